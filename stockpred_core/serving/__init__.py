"""Serving on the core: a registered model version loaded as the platform serves it (`model`), the feature rows it
takes (`rows`) and the answers it gives (`answers`). The prediction service and the stream worker share them, so an
intraday answer pushed by the stream and one served over HTTP are the same document."""
