"""The paper's baselines that need more than a plain classifier: RSE (:mod:`.rse`), VAE-CLA
(:mod:`.vae_cla`) and Defense-GAN (:mod:`.defense_gan`, its estimator
:mod:`.defense_gan_classifier`). Madry's adversarial training and the plain classifier are
trainers (:mod:`er_art.training`)."""
