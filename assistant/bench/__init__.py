"""Measurement: the suggestion bench (``suggestions``) over typing traces (``traces``) replayed by
accepting typists (``replay``) under peer strategies (``strategies``), the review bench
(``reviews``), the offline tier's own figures (``offline``), and the same typists against a
running deployment (``remote``) held to a budget (``budget``)."""
