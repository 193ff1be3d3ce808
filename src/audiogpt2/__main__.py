from audiogpt2.cli import main

raise SystemExit(main())
