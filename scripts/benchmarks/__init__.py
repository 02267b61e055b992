"""pulsewire's benchmarks, run by `scripts/bench` (see run.py): each module measures one kind of
figure against real parts, and report.py holds the floors the headline figures must meet."""
