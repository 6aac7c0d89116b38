"""Importing the weights the reference implementations publish (SAE, OASIS, DP-GAN, SPADE) as simreal runs.

``keymap`` holds the checked key-map machinery, ``synthesizers`` and ``sae`` the maps of each reference network
(written from the reference's module names and shapes), ``importer`` finds the files and writes the run directory.
"""
