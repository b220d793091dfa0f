from microlib.cli import main

raise SystemExit(main())
