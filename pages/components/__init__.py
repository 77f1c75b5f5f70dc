"""Building blocks shared by the operate pages (catalog, executions, inbox): status chips,
a JSON viewer, the read-only process graph, the typed start form, the attempt timeline and
the live-update helper. No page registers here."""
