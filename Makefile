# The two commands of the README: `make run` and `make test`.
.PHONY: run test lint typecheck pytest js-test bench bootstrap

run:
	@scripts/bootstrap --runtime-only
	.venv/bin/wshub $(if $(CONFIG),--config $(CONFIG),)

test: bootstrap lint typecheck pytest js-test

bootstrap:
	@scripts/bootstrap

lint:
	.venv/bin/ruff check hub protocols tests bench examples
	.venv/bin/ruff format --check hub protocols tests bench examples

typecheck:
	.venv/bin/mypy hub protocols

pytest:
	.venv/bin/pytest

js-test:
	cd js-client && npm test && npx tsc --noEmit -p . && npm run e2e

bench:
	@scripts/bootstrap
	.venv/bin/python -m bench
