"""Measurement: the suggestion bench (``suggestions``) over typing traces (``traces``) replayed by
accepting typists (``replay``) under peer strategies (``strategies``), the review bench
(``reviews``) and the offline tier's own figures (``offline``)."""
