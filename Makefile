# The two commands of the README: `make run` and `make test`.
.PHONY: run test test-latest lint typecheck pytest js-test bench bootstrap fuzz lock

# The venv the Python steps use: .venv holds the lock (requirements/*.txt),
# .venv-latest the newest versions pyproject.toml's ranges admit.
VENV ?= .venv

run:
	@scripts/bootstrap --runtime-only
	.venv/bin/wshub $(if $(CONFIG),--config $(CONFIG),)

test: bootstrap lint typecheck pytest js-test

# The suite on the newest releases the published ranges admit, in a throwaway
# venv: drift is seen here before users meet it (README, Development).
test-latest:
	@scripts/bootstrap --latest
	$(MAKE) lint typecheck pytest VENV=.venv-latest

lock:
	scripts/lock

bootstrap:
	@scripts/bootstrap

lint:
	$(VENV)/bin/ruff check hub protocols tests bench examples fuzz setup.py
	$(VENV)/bin/ruff format --check hub protocols tests bench examples fuzz setup.py

typecheck:
	$(VENV)/bin/mypy hub protocols fuzz

pytest:
	$(VENV)/bin/pytest

js-test:
	cd js-client && npm test && npx tsc --noEmit -p . && npm run e2e

bench:
	@scripts/bootstrap --bench
	.venv/bin/python -m bench

# Coverage-guided fuzzing of the codecs (MQTT 3.1.1 and 5.0 apart), FUZZ_SECONDS (default 60) each.
fuzz:
	@scripts/bootstrap --runtime-only
	@.venv/bin/python -c "import atheris" 2>/dev/null || .venv/bin/pip install --quiet -e '.[fuzz]'
	.venv/bin/python -m fuzz.run --seconds $(or $(FUZZ_SECONDS),60)
