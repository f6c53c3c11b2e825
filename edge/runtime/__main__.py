from edge.runtime.cli import main

raise SystemExit(main())
