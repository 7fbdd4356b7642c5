"""Shared blocks of the adversarial families: objectives (:mod:`.losses`), generator and critic
bodies (:mod:`.nets`) and the plugin base that trains and views them (:mod:`.base`)."""
