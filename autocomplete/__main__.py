from autocomplete.launch import main

raise SystemExit(main())
