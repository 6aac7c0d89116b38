"""The downstream benchmark (``simreal bench``): train one segmenter recipe on several weighted mixes of frame
stores, score each on a held-out real store, and report mean ± std over seeds.

Modules: ``definition`` (benchmark configs, mixes, the per-run plan), ``mix`` (weighted mixes of stores),
``run`` (one training + evaluation run, resumable), ``evaluate`` (scores on the evaluation store),
``aggregate`` (mean ± std and gains over seeds), ``report`` and ``chart`` (Markdown/HTML/PNG output).
"""
