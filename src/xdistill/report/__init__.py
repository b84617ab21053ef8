"""Reports: figures (:mod:`~xdistill.report.plots`), self-contained HTML pages
(:mod:`~xdistill.report.html`), the report of one distill run
(:mod:`~xdistill.report.run`), runs of one task side by side
(:mod:`~xdistill.report.compare`), why a student ends below its best teacher
(:mod:`~xdistill.report.shortfall`), bench tables and reports
(:mod:`~xdistill.report.bench`) and optional experiment tracking
(:mod:`~xdistill.report.tracking`)."""
