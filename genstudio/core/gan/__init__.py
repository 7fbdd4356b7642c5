"""Shared blocks of the adversarial families: objectives (:mod:`.losses`), generator and critic
bodies (:mod:`.nets`), the plugin base that trains and views them (:mod:`.base`), the StyleGAN and
BigGAN ingredients (:mod:`.blocks`) and the truncation trick's fidelity/diversity readout
(:mod:`.fidelity`)."""
