# rtml: the two commands of the quick start, and a few more.
#   make run    install what is missing, build (Release), run the fraud demo (rtml demo)
#   make test   install what is missing (Debian packages, the Kafka jars, the test
#               virtualenv .venv), build, run every test (ctest)
#   make bench  HTTP benchmark against the Python reference service (bench/)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all deps build run test bench clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD)

run: build
	RTML_BIN=$(BUILD)/rtml ./examples/fraud/setup.sh
	$(BUILD)/rtml demo --config examples/fraud/rtml.yaml

test: build
	./scripts/install-kafka.sh
	./scripts/install-venv.sh
	cd $(BUILD) && ctest --output-on-failure --timeout 600

bench: build
	./bench/http_predict.sh

clean:
	rm -rf $(BUILD)
