"""Tables, figures and studies regenerated from per-image records (never from models).

Modules: ``records_io`` (read and validate record CSVs), ``aggregate`` (per-image reduction and
mean/std/counts), ``tables`` (the paper's Tables 2 and 3, the main comparison, protocol sensitivity),
``reported`` (the paper's published numbers), ``correlation`` (Fig. 5 study), ``crf_study`` (Fig. 3
spread table and figure, from the curves ``evaluate.crf_study`` writes), ``qualitative`` (Figs. 6-7 grids from
run folders), ``figures`` (matplotlib plots, the commands' plots too), ``formats`` (CSV / Markdown / LaTeX
writers), ``build`` (the ``hdrbench tables`` / ``hdrbench report`` pipeline and the index page).
"""
