"""The table of ``edgenas``' top-level commands: the modules that register them and the first sentence of each one's
help, which the root's ``--help`` prints without importing the commands (:class:`edgenas.cli._app._LazyRoot`)."""

from __future__ import annotations

#: The modules that register the commands on :data:`edgenas.cli._app.app`, imported when a command is first needed.
COMMAND_MODULES = (
    # the order commands register in is the order `edgenas --help` lists them (COMMAND_SUMMARIES): the device's two
    # commands first (channels, compress_domino and scaling import hardware, which would register profile earlier)
    "hardware",
    "hardware_measure",
    "bench",
    "bench_proxies",
    "channels",
    "compress",
    "compress_domino",
    "pipeline",
    "predictors",
    "predictors_device",
    "scaling",
    "search",
    "search_strategies",
    "search_surgenas",
    "spaces",
    "store",
    "training",
    "training_eval",
)


#: First sentence of each top-level command's help, in the order ``edgenas --help`` lists them: the root's help
#: prints from this table so that it does not import the commands (and torch: 2.6 s here before, 0.1 s now). A
#: test keeps it equal to what the registered commands say.
COMMAND_SUMMARIES: dict[str, str] = {
    "profile": (
        "Measure N architectures of SPACE into the store (uniform samples, or --sampling ordered; --cover: "
        "spread over the latency range; --near T: predicted near T); archs already stored are skipped "
        "(resumable)."
    ),
    "measure": (
        "Measure the latency (median, IQR) and, with --energy where a counter exists, the energy of architectures."
    ),
    "channels": (
        "Search per-layer channel scales (0.5..2.0 of each layer's hidden channels) of ARCH that maximise BTE"
        " under a predicted latency of T (thesis Algorithm 2: population 20, 20 generations, top 10, rates "
        "0.5, BTE after 3 epochs), then land the found configuration on T measured on RUNTIME (the closed loop) "
        "and measure it beside the unmodified network."
    ),
    "graft": (
        "Graft the inner activations of the blocks a mask selects into identities (thesis Ch 5) and save the model."
    ),
    "reparam": (
        "Collapse every grafted block into one conv, fold the remaining BatchNorms, export to ONNX and verify it."
    ),
    "run": (
        "Profile, fit, search, train, compress, export and check, as CONFIG says; writes RUN_DIR/report.html "
        "after every stage."
    ),
    "report": "Rebuild the self-contained HTML report of a run directory.",
    "scale": (
        "Widen ARCH step by step on RUNTIME; keep the widest network whose latency stays in the original's noise band."
    ),
    "comfort": "Comfort Zone: latency and arithmetic intensity per width scale; the largest scale as fast as the base.",
    "monotonic": (
        "Performance monotonicity (thesis Def 3.1): gamma, R^2, Kendall tau, Spearman per device pair, and groups."
    ),
    "train": (
        "Train an architecture or a model (torchvision:NAME, a graft file, a run) and write a run directory "
        "(works under torchrun for several processes)."
    ),
    "eval": "Evaluate a trained network or model file (top-1, top-5, loss) on the test split of a dataset.",
    "space": "Inspect search spaces.",
    "arch": "Sample, inspect and export architectures.",
    "bench": "NAS-Bench-201 as the referee: true accuracy and device latency of cells, the oracle.",
    "compress": "Compress a network for a device under a latency budget (Domino, thesis Ch 5).",
    "predictor": "Fit, evaluate and compare latency/energy predictors.",
    "search": "Architecture search on the shared supernet: LightNAS, and the FBNet, GDAS, DARTS and random baselines.",
    "store": "Inspect, import into and export the measurement store.",
}
