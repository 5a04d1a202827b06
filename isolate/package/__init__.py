"""Distribution packages (.deb, .rpm) of a built bundle: the same payload as its archive,
installed below a prefix (``/opt/<name>``), built with the distribution's own tools."""
