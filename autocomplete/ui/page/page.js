// The --web page (autocomplete/ui/web.py): a search box with its dropdown, a completion streamed word by word, and
// the next token's odds redrawn as the sliders move. Text from the model only ever goes in through textContent.
"use strict";

const DEBOUNCE_MS = 60; // a keystroke's requests wait this long for the next keystroke
const BARS = 10; // candidates drawn as bars; the rest of the kept ones share one "other" bar

// The distribution the sampler draws from, as autocomplete/text/sample.py's probabilities(): softmax(logits / T),
// then the top k (and any tied with the k-th), then the fewest likeliest tokens holding p (at least one); T = 0 is
// the argmax alone. `logits` are the candidates' in their order (likeliest first; -Infinity: not allowed). Exact for
// the whole vocabulary while k is at most the candidates sent: the rest are cut anyway. tests/ui/test_web_browser.py
// checks it against sample.py.
function distribution(logits, temperature, topK, topP) {
  const n = logits.length;
  let best = -Infinity, argmax = -1;
  logits.forEach((l, i) => { if (l > best) { best = l; argmax = i; } });
  if (argmax < 0) return new Array(n).fill(0);
  if (temperature === 0) return logits.map((_, i) => (i === argmax ? 1 : 0));
  let z = logits.map((l) => (l - best) / temperature);
  if (topK > 0 && topK < n) {
    const kth = [...z].sort((a, b) => b - a)[topK - 1];
    z = z.map((v) => (v < kth ? -Infinity : v));
  }
  if (topP < 1) {
    // from the unlikely end: a token goes while it and everything less likely hold at most 1 - p
    const probs = softmax(z);
    const ascending = [...z.keys()].sort((a, b) => z[a] - z[b] || a - b);
    let held = 0;
    for (const i of ascending.slice(0, -1)) {
      held += probs[i];
      if (held > 1 - topP) break;
      z[i] = -Infinity;
    }
  }
  return softmax(z);
}

function softmax(z) {
  const top = Math.max(...z);
  const e = z.map((v) => (v === -Infinity ? 0 : Math.exp(v - top)));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

function entropyBits(probs) {
  return Math.max(0, -probs.reduce((h, p) => (p > 0 ? h + p * Math.log2(p) : h), 0));
}

// Draw one index from probs (Math.random: the page's own draw, not the server's seed).
function draw(probs) {
  let u = Math.random() * probs.reduce((a, b) => a + b, 0);
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i];
    if (u < 0 && probs[i] > 0) return i;
  }
  return probs.findIndex((p) => p > 0);
}

// A token as a label: its spaces and line breaks made visible.
function shownToken(text) {
  if (text === "") return "⟨end of text⟩";
  return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\r/g, "␍").replace(/\t/g, "⇥");
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;
// A candidate's logit (in process) or logprob (over --api); null: a token that can't come (-inf sent as null).
const score = (c) => { const v = "logit" in c ? c.logit : c.logprob; return v === null ? -Infinity : v; };

const $ = (id) => document.getElementById(id);
const state = { info: null, record: null, suggestions: [], selected: -1, typed: "", timer: null, suggesting: null,
                explaining: null, stream: null, closedFor: null };

function params(extra) {
  const query = new URLSearchParams(extra);
  query.set("t", $("t").value);
  query.set("k", $("k").value);
  query.set("p", $("p").value);
  return query;
}

function showError(message) {
  const error = $("error");
  error.textContent = message;
  error.hidden = !message;
}

async function getJSON(url, signal) {
  const reply = await fetch(url, { signal });
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || `${reply.status}`);
  return body;
}

// The dropdown

async function suggest(q) {
  if (state.suggesting) state.suggesting.abort(); // the previous keystroke's list is no longer wanted
  const controller = (state.suggesting = new AbortController());
  if (!q.trim()) return closeList();
  try {
    const [typed, full, descriptions] = await getJSON(`/suggest?${new URLSearchParams({ q, n: 8, keystroke: 1 })}`,
                                                      controller.signal);
    if (controller.signal.aborted || $("q").value !== typed || state.closedFor === typed) return;
    state.typed = typed;
    state.suggestions = full.map((text, i) => ({ text, probability: descriptions[i] }));
    drawList();
    showError("");
  } catch (error) {
    if (error.name !== "AbortError") showError(`suggestions: ${error.message}`);
  }
}

function drawList() {
  const list = $("suggestions");
  list.replaceChildren(...state.suggestions.map((s, i) => {
    const item = document.createElement("li");
    item.setAttribute("role", "option");
    item.setAttribute("aria-selected", String(i === state.selected));
    const words = document.createElement("span");
    const typed = document.createElement("span");
    typed.className = "typed";
    typed.textContent = s.text.slice(0, state.typed.length);
    const rest = document.createElement("span");
    rest.className = "rest";
    rest.textContent = s.text.slice(state.typed.length);
    words.append(typed, rest);
    const p = document.createElement("span");
    p.className = "p";
    p.textContent = s.probability;
    item.append(words, p);
    item.addEventListener("mousedown", (event) => { event.preventDefault(); choose(i); });
    return item;
  }));
  list.hidden = state.suggestions.length === 0;
  $("q").setAttribute("aria-expanded", String(!list.hidden));
}

function closeList() {
  state.closedFor = $("q").value; // a list on its way for this text is not opened again
  state.suggestions = [];
  state.selected = -1;
  drawList();
}

function move(by) {
  if (!state.suggestions.length) return;
  const count = state.suggestions.length;
  // past either end: back to what was typed, as a search box does
  state.selected = state.selected + by < -1 ? count - 1 : state.selected + by >= count ? -1 : state.selected + by;
  $("q").value = state.selected < 0 ? state.typed : state.suggestions[state.selected].text;
  drawList();
}

function choose(i) {
  $("q").value = state.suggestions[i].text;
  closeList();
  changed();
}

// The completion, streamed (Server-Sent Events)

function complete() {
  const q = $("q").value;
  if (!q.trim()) return;
  closeList();
  if (state.stream) state.stream.close();
  const section = $("completion");
  section.hidden = false;
  section.classList.remove("done");
  $("shown-prompt").textContent = q;
  $("streamed").textContent = "";
  $("completion-stats").textContent = "";
  const stream = (state.stream = new EventSource(`/complete?${params({ q })}`));
  stream.onmessage = (event) => { $("streamed").textContent += JSON.parse(event.data).piece; };
  stream.addEventListener("done", (event) => {
    const record = JSON.parse(event.data);
    stream.close();
    section.classList.add("done");
    const rate = record.stats.tokens_per_second;
    $("completion-stats").textContent = `${record.stats.completion_tokens} tokens, ended by ${record.finish_reason}` +
      (rate ? `, ${rate.toFixed(1)} tokens/s` : "") + `, seed ${record.settings.seed}`;
  });
  let finished = false;
  stream.addEventListener("done", () => { finished = true; });
  stream.addEventListener("error", (event) => {
    stream.close(); // no reconnecting: a completion is asked for once
    section.classList.add("done");
    if (event.data) showError(`completion: ${JSON.parse(event.data).error}`);
    else if (!finished) showError("completion: the server refused it or the stream broke off (see its log)");
  });
}

// The next token's odds

async function explain(q) {
  if (state.explaining) state.explaining.abort();
  const controller = (state.explaining = new AbortController());
  if (!q.trim()) { $("panel").hidden = true; return; }
  try {
    const record = await getJSON(`/explain?${params({ q, top: state.info.top })}`, controller.signal);
    if (controller.signal.aborted) return;
    state.record = record;
    drawPanel();
  } catch (error) {
    if (error.name !== "AbortError") showError(`next token: ${error.message}`);
  }
}

function currentStep() {
  const steps = state.record && state.record.steps;
  return steps && steps.length ? steps[steps.length - 1] : null;
}

// The text the step's token comes after: the prompt with the typed word finished, as the completion had it.
function before(record, step) {
  const picked = step.picked.text, done = record.completion;
  if (done.endsWith(picked)) return { text: record.prompt + done.slice(0, done.length - picked.length), cut: 0 };
  // the token spells letters already typed
  if (picked.endsWith(done)) return { text: record.prompt, cut: picked.length - done.length };
  return { text: record.prompt + done, cut: 0 };
}

// Which model answers, where, and in which frame.
function about(style) {
  const where = state.info.engine ? ` on ${state.info.engine}` : ` at ${state.info.api}`;
  $("about").textContent = `${state.info.model}${where} · style ${style}`;
}

function drawPanel() {
  const step = currentStep();
  $("panel").hidden = false;
  const record = state.record;
  about(`${record.style}${state.info.settings.style === "auto" ? " (auto)" : ""}`);
  if (!step) {
    $("bars").replaceChildren();
    $("context").textContent = "The completion ended before a next token (its stop rule).";
    return;
  }
  const T = Number($("t").value), k = Number($("k").value), p = Number($("p").value);
  $("t-out").textContent = T.toFixed(2);
  $("k-out").textContent = String(k);
  $("p-out").textContent = p.toFixed(2);
  const candidates = step.candidates;
  const probs = distribution(candidates.map(score), T, k, p);
  const word = record.word ? ` (the typed word finished as “${record.word.text.trim()}”)` : "";
  $("context").textContent = `After “${before(record, step).text}”${word}` +
    (step.allowed_tokens !== null ? `, only the ${step.allowed_tokens} tokens that fit the typed letters:` : ":");
  const rows = candidates.slice(0, BARS).map((c, i) => bar(shownToken(c.text), probs[i], c.probability["1.0"]));
  const rest = probs.slice(BARS).reduce((a, b) => a + b, 0);
  const others = probs.slice(BARS).filter((x) => x > 0).length;
  if (others) rows.push(bar(`${others} other${others > 1 ? "s" : ""}`, rest, null, "other"));
  $("bars").replaceChildren(...rows);
  $("bars").dataset.total = String(probs.reduce((a, b) => a + b, 0));
  const kept = probs.filter((x) => x > 0).length;
  $("entropy").textContent = `entropy ${entropyBits(probs).toFixed(2)} bits over the ${kept}` +
    ` tokens kept; the dark mark is the model's own probability (T = 1, no top-k / top-p)`;
  $("note").textContent = state.info.approximate
    ? `From the server's top alternatives only: probabilities renormalised over the ${candidates.length} listed.`
    : `The ${candidates.length} likeliest tokens are sent; top-k goes up to them, so the bars are exact.`;
}

function bar(label, p, model, className) {
  const row = document.createElement("li");
  if (className) row.className = className;
  const token = document.createElement("span");
  token.className = "token";
  token.textContent = label;
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${100 * p}%`;
  fill.style.display = "block";
  track.append(fill);
  if (model !== null && model !== undefined) {
    const mark = document.createElement("span");
    mark.className = "model";
    mark.style.left = `${Math.min(100, 100 * model)}%`;
    track.append(mark);
  }
  const pct = document.createElement("span");
  pct.className = "pct";
  pct.textContent = percent(p);
  row.dataset.p = String(p);
  row.append(token, track, pct);
  return row;
}

function stepOnce() {
  const step = currentStep();
  if (!step || state.record.prompt !== $("q").value) return; // the odds shown are for older text: wait for new ones
  const probs = distribution(step.candidates.map(score),
                             Number($("t").value), Number($("k").value), Number($("p").value));
  const picked = step.candidates[draw(probs)];
  if (picked.text === "") { $("context").textContent = "Drew the end of the text: the loop stops here."; return; }
  const { text, cut } = before(state.record, step);
  $("q").value = text + picked.text.slice(cut);
  changed();
}

// Wiring

function changed() {
  clearTimeout(state.timer);
  state.selected = -1;
  state.closedFor = null;
  const q = $("q").value;
  state.timer = setTimeout(() => { suggest(q); explain(q); }, DEBOUNCE_MS);
}

async function start() {
  state.info = await getJSON("/info");
  const s = state.info.settings;
  $("t").value = String(Math.min(2, s.temperature));
  $("k").max = String(state.info.top);
  $("k").value = String(s.top_k > 0 ? Math.min(s.top_k, state.info.top) : state.info.top);
  $("p").value = String(s.top_p);
  about(s.style);
  const q = $("q");
  q.maxLength = state.info.max_query;
  q.addEventListener("input", changed);
  q.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); move(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); move(-1); }
    else if (event.key === "Escape") {
      if (state.selected >= 0) q.value = state.typed;
      closeList();
    } else if (event.key === "Enter" && !event.isComposing) { // an input method's Enter is its own
      event.preventDefault();
      if (state.selected >= 0) choose(state.selected);
      else complete();
    }
  });
  q.addEventListener("blur", () => setTimeout(closeList, 100));
  $("search").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["t", "k", "p"]) $(id).addEventListener("input", () => state.record && drawPanel());
  $("step").addEventListener("click", stepOnce);
  const asked = new URLSearchParams(location.search).get("q"); // a browser's search engine sends ?q=
  if (asked) { q.value = asked; explain(asked); complete(); }
}

window.autocomplete = { distribution, entropyBits };
start().catch((error) => showError(`the page couldn't start: ${error.message}`));
