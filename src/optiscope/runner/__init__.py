"""The main job: run an experiment under the Monitor, analyse its end, diagnose."""
