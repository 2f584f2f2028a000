"""Training: one run of ``er-art train`` (:mod:`.run`, its loop :mod:`.loop`), its config
(:mod:`.config`), the trainer contract (:mod:`.trainers`), Algorithm 1 (:mod:`.algorithm`), the
min-max trainer (:mod:`.adversarial`), ART's fit through one step function (:mod:`.step_fit`),
batches (:mod:`.batches`) and RNG state (:mod:`.rng_state`).

The package face imports nothing, so importing one of its modules stays cheap."""
