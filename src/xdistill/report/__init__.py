"""Reports: figures (:mod:`~xdistill.report.plots`), self-contained HTML pages
(:mod:`~xdistill.report.html`), the report of one distill run
(:mod:`~xdistill.report.run`), bench tables and reports
(:mod:`~xdistill.report.bench`) and optional experiment tracking
(:mod:`~xdistill.report.tracking`)."""
