"""The models er-art trains and evaluates: the ER-Classifier's networks (:mod:`.er_model`)
and its ART estimator (:mod:`.er_classifier`), the architecture and prior contracts
(:mod:`.architectures`, :mod:`.priors`), building one from its architecture (:mod:`.build`), and
any PyTorch model wrapped for evaluation (:mod:`.wrapped`)."""
