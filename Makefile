# rtml: the two commands of the quick start, and a few more.
#   make run    install what is missing, build (Release), run the fraud demo (rtml demo)
#   make test   install what is missing (Debian packages, the Kafka jars, the test
#               virtualenv .venv), build, run every test (ctest)
#   make bench  HTTP benchmark against the Python reference service (bench/)
#   make fuzz   every libFuzzer target (tests/fuzz) for 10^7 executions, ASan + UBSan
#   make image  the container image rtml:dev (deploy/Dockerfile) with podman or docker
BUILD ?= build
SANITIZE_BUILD ?= build-asan
CMAKE_FLAGS ?=
FUZZ_RUNS ?= 10000000

.PHONY: all deps build sanitize-build run test fuzz bench image clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD)

run: build
	RTML_BIN=$(BUILD)/rtml ./examples/fraud/setup.sh
	$(BUILD)/rtml demo --config examples/fraud/rtml.yaml

# The same code built with clang, AddressSanitizer and UBSan, with the fuzz targets.
sanitize-build: deps
	CXX=clang++-14 cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRTML_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_BUILD)

image: deps
	./scripts/image.sh

# The builds (beside them the Kafka jars, the test virtualenv, the Go tools),
# the container image (tests/integration/test_image.py runs it), then the
# unit tests two at a time, the integration tests one at a time (some time
# what they measure), the unit tests again under ASan + UBSan, and each fuzz
# target for 5 s.
test: deps
	./scripts/prepare-tests.sh
	cd $(BUILD) && ctest -L unit -j2 --output-on-failure --timeout 600
	cd $(BUILD) && ctest -LE unit --output-on-failure --timeout 600
	cd $(SANITIZE_BUILD) && ctest -L unit -j2 --output-on-failure --timeout 600
	./scripts/fuzz.sh --seconds 5 --build $(SANITIZE_BUILD)

fuzz: sanitize-build
	./scripts/fuzz.sh --runs $(FUZZ_RUNS) --build $(SANITIZE_BUILD)

bench: build
	./bench/http_predict.sh

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
