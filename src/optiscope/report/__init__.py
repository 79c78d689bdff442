"""The report: renders records and findings (HTML, figures); computes nothing."""
