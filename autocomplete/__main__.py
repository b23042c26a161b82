from autocomplete.ui.launch import main

raise SystemExit(main())
