from isolate.cli import main

raise SystemExit(main())
