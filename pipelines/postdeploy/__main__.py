"""`python -m pipelines.postdeploy smoke|gate ...`."""

from pipelines.postdeploy.cli import main

raise SystemExit(main())
