from mcusearch.cli import main

raise SystemExit(main())
