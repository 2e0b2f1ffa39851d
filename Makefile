# campaignd: the two commands of the README, and a few helpers.
#   make run    install what is missing, build, start on http://127.0.0.1:8080
#   make test   install what is missing, build with sanitizers, run every test layer
.POSIX:
.PHONY: all build run test lint format docs bench clean deps deps-test

all: build

deps:
	@scripts/setup.sh build

deps-test:
	@scripts/setup.sh test

build: deps
	@scripts/meson-dir.sh build --buildtype=debugoptimized
	@ninja -C build
	@node scripts/build-web.mjs build/web

run: build
	./build/campaignd serve

test: deps-test
	@scripts/test.sh

lint:
	@scripts/lint.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

docs: build
	./build/campaignd config --markdown > docs/configuration.md

bench: build
	@scripts/setup.sh bench
	@bench/run.sh

clean:
	rm -rf build build-asan build-fuzz
