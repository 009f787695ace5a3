# The two commands of the README: `make run` and `make test`.
.PHONY: run test lint typecheck pytest js-test bench bootstrap fuzz

run:
	@scripts/bootstrap --runtime-only
	.venv/bin/wshub $(if $(CONFIG),--config $(CONFIG),)

test: bootstrap lint typecheck pytest js-test

bootstrap:
	@scripts/bootstrap

lint:
	.venv/bin/ruff check hub protocols tests bench examples fuzz
	.venv/bin/ruff format --check hub protocols tests bench examples fuzz

typecheck:
	.venv/bin/mypy hub protocols fuzz

pytest:
	.venv/bin/pytest

js-test:
	cd js-client && npm test && npx tsc --noEmit -p . && npm run e2e

bench:
	@scripts/bootstrap
	.venv/bin/python -m bench

# Coverage-guided fuzzing of the four codecs, FUZZ_SECONDS (default 60) each.
fuzz:
	@scripts/bootstrap --runtime-only
	@.venv/bin/python -c "import atheris" 2>/dev/null || .venv/bin/pip install --quiet -e '.[fuzz]'
	.venv/bin/python -m fuzz.run --seconds $(or $(FUZZ_SECONDS),60)
