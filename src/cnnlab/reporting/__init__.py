"""The report: collect finished runs, summarise them over seeds, and write REPORT.md, report.html and results.csv."""

from cnnlab.reporting.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
