"""NEP (neuroevolution potential) models in PyTorch: descriptors, nep.txt, the NEP backend."""
