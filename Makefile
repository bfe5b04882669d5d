# The README's commands. Each target creates the virtual environment (.venv) and installs the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= results/demo

SPEED_MODEL_DIR ?= models/fashion_mnist_500_train

.PHONY: install demo test bench-speed bench-strategies bench-pipelines bench-representations bench-scale readme-reports bench-reports report-screenshots screenshots label-demo bench-live bench-live-simulation clean

install: $(STAMP)

# The tested pins (requirements.txt) first, then the project with its TensorFlow [cpu] extra, which the pins satisfy,
# and the [ray] extra the Ray engine's tests need.
$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[cpu,test,ray]'
	touch $(STAMP)

# The main job, end to end on the embedded digits data: the design's cycle (MobileNetV3Small, the intersection),
# then the recommended pipeline (a linear model on label-free patch features, the recommended strategy, as many
# labels as the intersection picked), each against random labels with its own learner.
demo: $(STAMP)
	$(BIN)/python AL_cycle.py --dataset digits --train-base --labeled-size 500 --start-idx 500 --end-idx 1347 \
		--target-per-class 1 --models-dir $(DEMO_DIR)/models --output-dir $(DEMO_DIR)
	$(BIN)/python AL_cycle.py --dataset digits --train-base --learner linear --labeled-size 500 --start-idx 500 \
		--end-idx 1347 --budget 66 --target-per-class 1 --models-dir $(DEMO_DIR)/pipeline/models \
		--output-dir $(DEMO_DIR)/pipeline

# The test suite. pytest's exit code 5 ("no tests collected") is a failure here, with a message saying so.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: tests/ must hold test_*.py files" >&2; fi; \
	exit $$status

# Analysis cost vs one forward pass (3,500 and 50,000 images), with a base model trained on Fashion-MNIST.
$(SPEED_MODEL_DIR)/best_model.keras: | $(STAMP)
	$(BIN)/python train.py --dataset fashion_mnist --classes 0,1,8 --labeled-size 500 --quiet --output-dir $(SPEED_MODEL_DIR)

bench-speed: $(STAMP) $(SPEED_MODEL_DIR)/best_model.keras
	$(BIN)/python benchmarks/analysis_speed.py --model $(SPEED_MODEL_DIR)/best_model.keras --repeats 5 --output benchmarks/results/analysis_speed.md

# Each budgeted strategy's selection time on a 50,000-image pool vs one forward pass (issue 6's speed target).
bench-strategies: $(STAMP) $(SPEED_MODEL_DIR)/best_model.keras
	$(BIN)/python benchmarks/strategy_speed.py --model $(SPEED_MODEL_DIR)/best_model.keras --repeats 3 --output benchmarks/results/strategy_speed.md

# The label-efficiency benchmarks in the README: the design's baseline (about 1.5 hours on two cores), the pipelines
# (about 40 minutes), the scarce regime (about 20), label spreading (about 25) and the pipelines choosing among a
# sample of 2,000 candidates (about 30, then compared with the whole-pool run); each resumes where it stopped, and a
# finished one re-renders its report.
bench-pipelines: $(STAMP)
	$(BIN)/python -m Evaluation.Benchmark.benchmark --preset fashion-baseline --workers 2 --output-dir benchmarks/results/fashion-baseline
	$(BIN)/python -m Evaluation.Benchmark.benchmark --preset fashion-pipeline --workers 2 --output-dir benchmarks/results/fashion-pipeline --baseline benchmarks/results/fashion-baseline
	$(BIN)/python -m Evaluation.Benchmark.benchmark --preset fashion-pipeline-scarce --output-dir benchmarks/results/fashion-pipeline-scarce --baseline benchmarks/results/fashion-baseline
	$(BIN)/python -m Evaluation.Benchmark.benchmark --preset fashion-pipeline-spreading --workers 2 --output-dir benchmarks/results/fashion-pipeline-spreading --baseline benchmarks/results/fashion-baseline
	$(BIN)/python -m Evaluation.Benchmark.benchmark --preset fashion-pipeline-candidates --workers 2 --output-dir benchmarks/results/fashion-pipeline-candidates
	$(BIN)/python benchmarks/candidates.py --sampled benchmarks/results/fashion-pipeline-candidates --whole benchmarks/results/fashion-pipeline --output benchmarks/results/max_candidates.md
	$(BIN)/python benchmarks/embed_reports.py

# Linear-probe accuracy and cost of each label-free representation, and one pipeline round on a 50,000-image pool.
bench-representations: $(STAMP)
	$(BIN)/python benchmarks/representations.py --output benchmarks/results/representations.md
	$(BIN)/python benchmarks/pipeline_speed.py --output benchmarks/results/pipeline_speed.md
	$(BIN)/python benchmarks/embed_reports.py

# Copy the committed benchmark reports into README.md.
readme-reports: $(STAMP)
	$(BIN)/python benchmarks/embed_reports.py

# Re-render the committed benchmark runs' reports, figures and report.html from their results.json (nothing is
# trained; the HTML galleries read Fashion-MNIST), then copy the reports into README.md.
bench-reports: $(STAMP)
	$(BIN)/python -m Evaluation.Benchmark.report benchmarks/results/fashion benchmarks/results/fashion-scarce \
		benchmarks/results/fashion-baseline benchmarks/results/fashion-pipeline \
		benchmarks/results/fashion-pipeline-scarce benchmarks/results/fashion-pipeline-spreading \
		benchmarks/results/fashion-pipeline-candidates
	$(BIN)/python benchmarks/embed_reports.py

# The README's pictures of the HTML reports: the committed fashion-pipeline run's and the demo cycle's (make demo).
report-screenshots: $(STAMP)
	$(BIN)/python docs/screenshot_reports.py

# The README's pictures of the labeling page (headless Debian chromium through Playwright).
screenshots: $(STAMP)
	$(BIN)/python docs/screenshot_labeling_page.py
	$(BIN)/python -m docs.screenshot_live_page

# The labeling walkthrough's first steps on digits written as image folders: folders, base model, round 1.
LABEL_DEMO_DIR ?= results/label-demo
label-demo: $(STAMP)
	$(BIN)/python docs/demo_folders.py --output-dir $(LABEL_DEMO_DIR)
	$(BIN)/python train.py --dataset folder --data-path $(LABEL_DEMO_DIR)/labeled --labeled-size 160 --quiet \
		--output-dir $(LABEL_DEMO_DIR)/models/base
	$(BIN)/python label.py select --project $(LABEL_DEMO_DIR)/project --pool $(LABEL_DEMO_DIR)/pool \
		--labeled $(LABEL_DEMO_DIR)/labeled --model $(LABEL_DEMO_DIR)/models/base/best_model.keras --budget 20

# Label post latency of label.py serve --live while its worker refits (digits, 100 labels; about a minute).
bench-live: $(STAMP)
	$(BIN)/python -m benchmarks.live_latency --output benchmarks/results/live_latency.md

# The live queue (rounds of 10) against batch rounds of 100 on Fashion-MNIST, 10 seeds (its report ends with its time).
bench-live-simulation: $(STAMP)
	$(BIN)/python -m benchmarks.live_simulation --output benchmarks/results/live_simulation.md

clean:
	rm -rf $(VENV) .pytest_cache results/demo $(LABEL_DEMO_DIR)

# label.py select on generated pools of 10,000 to 1,000,000 PNG files at 32 px and up to 100,000 at 128 px: time, peak
# memory, the streamed pass, the Ray engine (about 45 minutes on two cores; the pools, about 5 GB, stay in
# results/scale and are reused).
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py --sizes 10000,100000,1000000 --image-size 32 --work-dir results/scale --output benchmarks/results/scale_32px.md
	$(BIN)/python benchmarks/scale.py --sizes 10000,100000 --image-size 128 --work-dir results/scale --output benchmarks/results/scale_128px.md
	$(BIN)/python benchmarks/embed_reports.py
