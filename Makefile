# The one task runner, used the same way locally and in CI.
# `make dev` and `make test` each bootstrap .venv from the hash-checked lock of their install set
# (locks/<set>.txt, infra/tools/lockfile.py); a second run skips the install (the stamp file is
# keyed on the lock's content). `make lock` regenerates every lock after pyproject.toml or
# constraints.txt changed; `make lock-check` (and the test suite) fail while a lock is stale.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Install set: dev (everything, the default), infra (every deploy, preview and build job: no torch), local,
# runtime.
LOCK_SET ?= dev
LOCK_FILE := locks/$(LOCK_SET).txt
# What the Lambda artifact is built from (infra/tools/lockfile.py RUNTIME_LOCK).
RUNTIME_LOCK := locks/runtime.txt
INSTALLER_LOCK := locks/installer.txt
DEPS_HASH := $(shell cat $(LOCK_FILE) $(INSTALLER_LOCK) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(LOCK_SET)-$(DEPS_HASH)
# Empty: single-stack targets take the first stack of the deploy order, `rehearse` every stack
# (infra/stacks.py reads them from the Pulumi.<stack>.yaml files).
STACK ?=
BASE ?= origin/main
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: rename dev test lint typecheck unit integration e2e smoke workflows-check package artifact-smoke inventory diff-inventory security-scan cost bench clean lock lock-check lock-platforms

# Exactly the lock, hashes checked, nothing resolved: pip installs uv from its own hash lock, uv
# installs the set from the sources of the machine's pip configuration (pip alone where uv has no
# wheel); on Linux torch's CPU build comes from PyTorch's CPU index appended to those sources
# when they lack it (infra/tools/lockfile.py says why).
$(STAMP): $(LOCK_FILE) $(INSTALLER_LOCK)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PY) -m infra.tools.lockfile install --python $(BIN)/python --set $(LOCK_SET)
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

## dev: the local platform on embedded defaults (moto S3/SQS, worker, API, web page)
dev: $(STAMP)
	$(BIN)/ragctl dev

## test: lint, types and every test layer
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy service pipelines infra tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache

# --- locks (issue 17) ---
# pip-compile honours the machine's pip configuration (indexes, find-links), so the lock
# resolves here from the same sources `make dev` installs from. It gets its own virtualenv:
# the project's lock must not depend on the tool that writes it.
LOCK_TOOLS_VENV ?= .venv-lock
PIP_TOOLS_VERSION ?= 7.6.2
LOCK_TOOLS_STAMP := $(LOCK_TOOLS_VENV)/.installed-$(PIP_TOOLS_VERSION)

$(LOCK_TOOLS_STAMP):
	@test -x $(LOCK_TOOLS_VENV)/bin/python || $(PY) -m venv $(LOCK_TOOLS_VENV)
	$(LOCK_TOOLS_VENV)/bin/python -m pip install -q 'pip-tools==$(PIP_TOOLS_VERSION)'
	@rm -f $(LOCK_TOOLS_VENV)/.installed-*; touch $@

## lock: regenerate locks/*.txt (hashes) from pyproject.toml and constraints.txt
lock: $(LOCK_TOOLS_STAMP)
	$(PY) -m infra.tools.lockfile compile --pip-compile $(LOCK_TOOLS_VENV)/bin/pip-compile

## lock-check: fail, naming the set and the pins that moved, when a lock is stale
lock-check:
	$(PY) -m infra.tools.lockfile check

## lock-platforms: pip (dry run, hashes) checks each deploy-side lock installs on the Lambda platform
lock-platforms:
	$(PY) -m infra.tools.lockfile platforms

# --- ci/cd (issue 6) ---
# The post-deploy suite (docs/cicd.md) against the local platform `make dev` started; CI runs the
# same module against each deployed stack with `--from-stack STACK`.
PLATFORM_JSON ?= .data/platform.json

## smoke: post-deploy smoke checks (a reader key's confinement included) and retrieval gate against the running local platform
smoke: $(STAMP)
	$(BIN)/python -m pipelines.postdeploy smoke --from-local $(PLATFORM_JSON) --reader-key-checks
	$(BIN)/python -m pipelines.postdeploy gate --from-local $(PLATFORM_JSON)

## workflows-check: actionlint, zizmor and the promotion-graph tests over .github/workflows
workflows-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/workflows

# --- infra (issue 5) ---
# Review tools that need no cloud credentials: the Pulumi program runs in-process under
# mocks (infra/tools/offline.py). checkov gets its own virtualenv because its pins
# conflict with the main one; the first `make security-scan` bootstraps it.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

## package: reproducible Lambda artifact from service/ (build/lambda/service.zip), smoked, then cold-start times
package: $(STAMP)
	$(BIN)/python -m infra.tools.package
	$(MAKE) --no-print-directory artifact-smoke
	$(BIN)/python -m infra.tools.importtime $(if $(STACK),--stack $(STACK))

# On Lambda's platform (CI's build job) the release zip itself is smoked; elsewhere a host
# build of the same locked versions. SMOKE_PYTHON picks another interpreter.
## artifact-smoke: every stack's functions run from the unpacked zip in an isolated interpreter (issue 10)
artifact-smoke: $(STAMP)
	$(BIN)/python -m infra.tools.artifact_smoke --json-report build/lambda/artifact-smoke.json

## inventory: every resource the program declares for STACK=<any stack file's stack> (default: the first
## of the deploy order), as one JSON document; OVERLAY=docs/examples/<snippet>.yaml replaces its keys with the snippet's
inventory: $(STAMP)
	@$(BIN)/python -m infra.tools.inventory $(if $(STACK),--stack $(STACK)) $(if $(OVERLAY),--overlay $(OVERLAY))

## diff-inventory: resources and properties changed between BASE=<git ref> and the working tree
diff-inventory: $(STAMP)
	@$(BIN)/python -m infra.tools.diff_inventory --base $(BASE)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov==$(CHECKOV_VERSION)'
	@rm -f $(CHECKOV_VENV)/.installed-*; touch $@

.PHONY: rehearse preflight

# parliament still imports pkg_resources (gone from setuptools 81), so it gets its own venv too.
IAMLINT_VENV ?= .venv-iamlint
PARLIAMENT_VERSION ?= 1.6.4
IAMLINT_STAMP := $(IAMLINT_VENV)/.installed-$(PARLIAMENT_VERSION)

$(IAMLINT_STAMP):
	@test -x $(IAMLINT_VENV)/bin/python || $(PY) -m venv $(IAMLINT_VENV)
	$(IAMLINT_VENV)/bin/python -m pip install -q 'parliament==$(PARLIAMENT_VERSION)' 'setuptools<81'
	@rm -f $(IAMLINT_VENV)/.installed-*; touch $@

## security-scan: checkov over every stack's mocked plan and IAM lint (cloudsplaining, parliament) over
## every policy of the program and bootstrap/; waivers in infra/checkov_waivers.yaml, infra/iam_lint_waivers.yaml
security-scan: $(STAMP) $(CHECKOV_STAMP) $(IAMLINT_STAMP)
	$(BIN)/python -m infra.tools.security_scan --checkov $(CHECKOV_VENV)/bin/checkov \
		--parliament-python $(IAMLINT_VENV)/bin/python

## rehearse: offline deploy rehearsal for STACK, or every stack without it (program under mocks, deploy- and preview-role coverage, policy pack,
## IAM lint, checkov); no credentials; one verdict per check, non-zero naming the failed ones
rehearse: $(STAMP) $(CHECKOV_STAMP) $(IAMLINT_STAMP)
	$(BIN)/python -m infra.tools.rehearse $(if $(STACK),--stack $(STACK)) --checkov $(CHECKOV_VENV)/bin/checkov \
		--parliament-python $(IAMLINT_VENV)/bin/python $(if $(OVERLAY),--overlay $(OVERLAY))

## preflight: account quotas that break a first deploy of STACK (needs AWS credentials for the account)
preflight: $(STAMP)
	$(BIN)/python -m infra.tools.preflight $(if $(STACK),--stack $(STACK))

## cost: monthly estimate per stack (prices.yaml x each stack's <project>:usage), budget check,
## and the change against BASE when that ref exists
cost: $(STAMP)
	@$(BIN)/python -m infra.tools.cost $(if $(shell git rev-parse --verify -q $(BASE) 2>/dev/null),--base $(BASE))

# --- api (issue 4) ---
# Load test and query benchmark (docs/api.md, "Performance"). `make load` runs against the
# platform `make dev` started (its local rate limit, 60,000 a minute, is above the offered load).
LOAD_USERS ?= 50
LOAD_TIME ?= 60s
.PHONY: load bench-query

## load: locust, headless, LOAD_USERS users for LOAD_TIME against the running local platform
load: $(STAMP)
	$(BIN)/locust -f pipelines/load/locustfile.py --headless -u $(LOAD_USERS) -r 10 -t $(LOAD_TIME) \
		--only-summary --exit-code-on-error 1

## bench-query: p50/p95/p99 of search and query at 10k and 100k chunks, in-process and over HTTP (JSON)
bench-query: $(STAMP)
	@$(BIN)/ragctl bench query --json

# --- mutation testing (issue 16) ---
# mutmut on one core module at a time with only its tests (tests/mutation/targets.yaml); fails
# below 90% killed of the non-equivalent mutants (tests/mutation/equivalent.yaml). CPU-heavy:
# CI runs it on a schedule and on PRs touching the core (.github/workflows/mutation.yml).
MODULES ?=
MUTATION_JOBS ?= 1
# mutmut is in the dev lock (infra/tools/lockfile.py SETS), so nothing installs around the lock.
.PHONY: mutation

## mutation: killed / survived / equivalent mutants per core module (MODULES=service/api/auth.py,...)
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation.run --modules "$(MODULES)" --jobs $(MUTATION_JOBS)

# --- forking (issue 13) ---
## rename: NAME=<new-name> renames the project: Pulumi.yaml's name, every stack file's `<name>:` keys,
## bootstrap/Pulumi.yaml and the docs; code, tests and workflows read the name from Pulumi.yaml
rename:
	@test -n "$(NAME)" || { echo "usage: make rename NAME=<new-name>"; exit 2; }
	$(PY) -m infra.tools.rename $(NAME)
