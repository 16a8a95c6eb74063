from bootagent.cli.main import main

raise SystemExit(main())
