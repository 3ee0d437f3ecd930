"""Unit conversions, defined once. Inside the package: OpenMM units (nm, kJ/mol); in QM files and
reports: Å, kcal/mol, kcal/mol/Å (DESIGN.md)."""

KCAL_TO_KJ = 4.184
KJ_TO_KCAL = 1.0 / KCAL_TO_KJ
ANGSTROM_TO_NM = 0.1
KJ_PER_NM_TO_KCAL_PER_ANGSTROM = KJ_TO_KCAL * ANGSTROM_TO_NM  # forces
HARTREE_TO_KCAL = 627.5094740631
HARTREE_TO_KJ = HARTREE_TO_KCAL * KCAL_TO_KJ
BOHR_TO_ANGSTROM = 0.529177210903
BOHR_TO_NM = BOHR_TO_ANGSTROM * ANGSTROM_TO_NM
