"""MD stability of grappa_like Systems on drug-like molecules that are not in the training data.

For each molecule (default: the first 100 of the drug list below that pass the input checks and do
not occur in the training data):
  1. parameterize it with the model (default: the shipped model) -> OpenMM System;
  2. start from an RDKit ETKDG conformer relaxed with MMFF94 (seeded, independent of our force
     field), minimise with our System, give Maxwell-Boltzmann velocities at 300 K;
  3. run NVT Langevin MD (LangevinMiddleIntegrator, 300 K, friction 1/ps), by default 100 ps with
     1 fs steps and no constraints (every bond, X-H included, is tested); ``--timestep-fs 2
     --constraints hbonds`` runs 2 fs steps with X-H bonds constrained to the model's r0;
  4. every 0.1 ps (and after the minimisation) check (the checks live in grappa_like/md_check.py):
     - blow-up: non-finite coordinates or energy, an OpenMM error, or a potential energy more than
       50 kJ/mol per atom above the minimised energy (equipartition puts it near 1.25 kJ/mol per
       atom at 300 K); the run stops at a blow-up;
     - bond-length outliers: |r - r0| > 0.3 Å for any bond, r0 = the model's equilibrium length
       (thermal fluctuations at 300 K are ~0.03-0.08 Å, so 0.3 Å means a broken or absurdly soft
       bond); constrained bonds are skipped;
     - planarity of aromatic rings: largest distance of a ring atom from the ring's best-fit plane
       (SVD); flagged above 0.3 Å (a flat ring at 300 K stays below ~0.15 Å);
     - chirality: the sign of the signed volume (p1 - c)·((p2 - c)×(p3 - c)) of every tetrahedral
       stereocentre (RDKit's chiral centres, specified or not; neighbours in atom-index order),
       compared with the MMFF94 start structure; a flip = the sign differs at the end; transient =
       inverted in some sampled frame; the CIP labels of start and end (RDKit, from 3D) are
       compared too.
  The training-data overlap check compares canonical SMILES of the parent structure (largest
  fragment, neutralised, stereo removed, RDKit's canonical tautomer) with every molecule of the
  training files, so a drug whose carboxylate or ammonium form, another stereoisomer or another
  tautomer was trained on counts as seen (reading train-v0.h5 this way takes ~20 s).

Outputs ``<output-dir>/md_stability.md`` (Markdown table + summary) and ``md_stability.json``
(settings, thresholds, per-molecule metrics, skipped molecules and why). Exit code 0 when it ran
(whatever the verdicts), 2 on a usage error.

Usage: OMP_NUM_THREADS=2 python scripts/md_stability.py [--model PATH] [--n-molecules 100]
       [--time-ps 100] [--timestep-fs 1] [--constraints none|hbonds] [--platform CPU]
       [--training-data ../shared/data/train-v0.h5 ...] [--output-dir docs/md-stability]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as platform_module
import sys
import time
from pathlib import Path

import numpy as np

from grappa_like.md_check import FRICTION_PER_PS, SAMPLE_EVERY_PS, SEED, TEMPERATURE_K, THRESHOLDS, run_md_check

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_TRAINING_DATA = [REPOSITORY.parent / "shared" / "data" / "train-v0.h5"]

# Well-known approved drugs (neutral parent forms), SMILES written for this script from their
# published structures; the names are for orientation. Only H C N O F P S Cl Br I. The script
# drops any that occur in the training data (see the module docstring) and keeps list order.
DRUGS = (
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"),
    ("naproxen", "COc1ccc2cc(ccc2c1)[C@H](C)C(=O)O"),
    ("diclofenac", "OC(=O)Cc1ccccc1Nc1c(Cl)cccc1Cl"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
    ("theophylline", "Cn1c2nc[nH]c2c(=O)n(C)c1=O"),
    ("nicotine", "CN1CCC[C@H]1c1cccnc1"),
    ("metformin", "CN(C)C(=N)N=C(N)N"),
    ("atenolol", "CC(C)NCC(O)COc1ccc(CC(N)=O)cc1"),
    ("propranolol", "CC(C)NCC(O)COc1cccc2ccccc12"),
    ("metoprolol", "COCCc1ccc(OCC(O)CNC(C)C)cc1"),
    ("salbutamol", "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"),
    ("diazepam", "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc12"),
    ("lorazepam", "OC1N=C(c2ccccc2Cl)c2cc(Cl)ccc2NC1=O"),
    ("alprazolam", "Cc1nnc2n1-c1ccc(Cl)cc1C(c1ccccc1)=NC2"),
    ("carbamazepine", "NC(=O)N1c2ccccc2C=Cc2ccccc21"),
    ("phenytoin", "O=C1NC(=O)C(c2ccccc2)(c2ccccc2)N1"),
    ("lamotrigine", "Nc1nnc(c(N)n1)-c1cccc(Cl)c1Cl"),
    ("fluoxetine", "CNCCC(Oc1ccc(cc1)C(F)(F)F)c1ccccc1"),
    ("sertraline", "CN[C@H]1CC[C@@H](c2ccc(Cl)c(Cl)c2)c2ccccc12"),
    ("citalopram", "CN(C)CCCC1(OCc2cc(C#N)ccc12)c1ccc(F)cc1"),
    ("paroxetine", "Fc1ccc(cc1)[C@@H]1CCNC[C@H]1COc1ccc2OCOc2c1"),
    ("venlafaxine", "COc1ccc(cc1)C(CN(C)C)C1(O)CCCCC1"),
    ("amitriptyline", "CN(C)CCC=C1c2ccccc2CCc2ccccc12"),
    ("imipramine", "CN(C)CCCN1c2ccccc2CCc2ccccc21"),
    ("haloperidol", "OC1(CCN(CCCC(=O)c2ccc(F)cc2)CC1)c1ccc(Cl)cc1"),
    ("chlorpromazine", "CN(C)CCCN1c2ccccc2Sc2ccc(Cl)cc21"),
    ("olanzapine", "CN1CCN(CC1)C1=Nc2ccccc2Nc2sc(C)cc12"),
    ("quetiapine", "OCCOCCN1CCN(CC1)C1=Nc2ccccc2Sc2ccccc12"),
    ("risperidone", "Cc1nc2CCCCn2c(=O)c1CCN1CCC(CC1)c1noc2cc(F)ccc12"),
    ("clozapine", "CN1CCN(CC1)C1=Nc2cc(Cl)ccc2Nc2ccccc12"),
    ("omeprazole", "COc1ccc2[nH]c(nc2c1)S(=O)Cc1ncc(C)c(OC)c1C"),
    ("ranitidine", "CNC(=C[N+](=O)[O-])NCCSCc1ccc(CN(C)C)o1"),
    ("cimetidine", "CN=C(NC#N)NCCSCc1nc[nH]c1C"),
    ("loratadine", "CCOC(=O)N1CCC(=C2c3ccc(Cl)cc3CCc3cccnc23)CC1"),
    ("cetirizine", "OC(=O)COCCN1CCN(CC1)C(c1ccccc1)c1ccc(Cl)cc1"),
    ("diphenhydramine", "CN(C)CCOC(c1ccccc1)c1ccccc1"),
    ("warfarin", "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O"),
    ("clopidogrel", "COC(=O)[C@H](c1ccccc1Cl)N1CCc2sccc2C1"),
    ("atorvastatin", "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O"),
    ("simvastatin", "CCC(C)(C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@@H]12"),
    ("losartan", "CCCCc1nc(Cl)c(CO)n1Cc1ccc(cc1)-c1ccccc1-c1nn[nH]n1"),
    ("valsartan", "CCCCC(=O)N(Cc1ccc(cc1)-c1ccccc1-c1nn[nH]n1)[C@@H](C(C)C)C(=O)O"),
    ("captopril", "C[C@H](CS)C(=O)N1CCC[C@H]1C(=O)O"),
    ("enalapril", "CCOC(=O)[C@H](CCc1ccccc1)N[C@@H](C)C(=O)N1CCC[C@H]1C(=O)O"),
    ("lisinopril", "NCCCC[C@H](N[C@@H](CCc1ccccc1)C(=O)O)C(=O)N1CCC[C@H]1C(=O)O"),
    ("amlodipine", "CCOC(=O)C1=C(COCCN)NC(C)=C(C1c1ccccc1Cl)C(=O)OC"),
    ("nifedipine", "COC(=O)C1=C(C)NC(C)=C(C1c1ccccc1[N+](=O)[O-])C(=O)OC"),
    ("verapamil", "COc1ccc(CCN(C)CCCC(C#N)(C(C)C)c2ccc(OC)c(OC)c2)cc1OC"),
    ("diltiazem", "COc1ccc(cc1)[C@@H]1Sc2ccccc2N(CCN(C)C)C(=O)[C@@H]1OC(C)=O"),
    ("furosemide", "NS(=O)(=O)c1cc(C(=O)O)c(NCc2ccco2)cc1Cl"),
    ("hydrochlorothiazide", "NS(=O)(=O)c1cc2c(cc1Cl)NCNS2(=O)=O"),
    ("spironolactone", "CC(=O)S[C@@H]1CC2=CC(=O)CC[C@]2(C)[C@H]2CC[C@@]3(C)[C@@H](CC[C@@]34CCC(=O)O4)[C@@H]12"),
    ("metronidazole", "Cc1ncc([N+](=O)[O-])n1CCO"),
    ("ciprofloxacin", "OC(=O)c1cn(C2CC2)c2cc(N3CCNCC3)c(F)cc2c1=O"),
    ("levofloxacin", "C[C@H]1COc2c(N3CCN(C)CC3)c(F)cc3c(=O)c(cn1c23)C(=O)O"),
    ("amoxicillin", "CC1(C)S[C@@H]2[C@H](NC(=O)[C@H](N)c3ccc(O)cc3)C(=O)N2[C@H]1C(=O)O"),
    ("benzylpenicillin", "CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O"),
    ("cefalexin", "CC1=C(N2[C@H](SC1)[C@H](NC(=O)[C@H](N)c1ccccc1)C2=O)C(=O)O"),
    ("sulfamethoxazole", "Cc1cc(NS(=O)(=O)c2ccc(N)cc2)no1"),
    ("trimethoprim", "COc1cc(Cc2cnc(N)nc2N)cc(OC)c1OC"),
    ("chloramphenicol", "OC[C@@H](NC(=O)C(Cl)Cl)[C@H](O)c1ccc(cc1)[N+](=O)[O-]"),
    ("isoniazid", "NNC(=O)c1ccncc1"),
    ("pyrazinamide", "NC(=O)c1cnccn1"),
    ("ethambutol", "CC[C@@H](CO)NCCN[C@@H](CC)CO"),
    ("fluconazole", "OC(Cn1cncn1)(Cn1cncn1)c1ccc(F)cc1F"),
    ("aciclovir", "Nc1nc2n(COCCO)cnc2c(=O)[nH]1"),
    ("zidovudine", "Cc1cn([C@H]2C[C@H](N=[N+]=[N-])[C@@H](CO)O2)c(=O)[nH]c1=O"),
    ("oseltamivir", "CCOC(=O)C1=C[C@@H](OC(CC)CC)[C@H](NC(C)=O)[C@@H](N)C1"),
    ("sildenafil", "CCCc1nn(C)c2c(=O)[nH]c(nc12)-c1cc(ccc1OCC)S(=O)(=O)N1CCN(C)CC1"),
    ("tadalafil", "CN1CC(=O)N2[C@@H](Cc3c([nH]c4ccccc34)[C@H]2c2ccc3OCOc3c2)C1=O"),
    ("tamoxifen", "CC/C(=C(\\c1ccccc1)c1ccc(OCCN(C)C)cc1)c1ccccc1"),
    ("letrozole", "N#Cc1ccc(cc1)C(c1ccc(cc1)C#N)n1cncn1"),
    ("anastrozole", "CC(C)(C#N)c1cc(Cn2cncn2)cc(c1)C(C)(C)C#N"),
    ("imatinib", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(n1)-c1cccnc1"),
    ("gefitinib", "COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1"),
    ("erlotinib", "COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC"),
    ("methotrexate", "CN(Cc1cnc2nc(N)nc(N)c2n1)c1ccc(cc1)C(=O)N[C@@H](CCC(=O)O)C(=O)O"),
    ("fluorouracil", "O=c1[nH]cc(F)c(=O)[nH]1"),
    ("cyclophosphamide", "ClCCN(CCCl)P1(=O)NCCCO1"),
    ("prednisolone", "C[C@]12C[C@H](O)[C@H]3[C@@H](CCC4=CC(=O)C=C[C@]34C)[C@@H]1CC[C@]2(O)C(=O)CO"),
    ("dexamethasone", "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)CO"),
    ("hydrocortisone", "C[C@]12CCC(=O)C=C1CC[C@@H]1[C@@H]2[C@@H](O)C[C@@]2(C)[C@H]1CC[C@]2(O)C(=O)CO"),
    ("testosterone", "C[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@]34C)[C@@H]1CC[C@@H]2O"),
    ("estradiol", "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc34)[C@@H]1CC[C@@H]2O"),
    ("levothyroxine", "N[C@@H](Cc1cc(I)c(Oc2cc(I)c(O)c(I)c2)c(I)c1)C(=O)O"),
    ("morphine", "CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5"),
    ("codeine", "COc1ccc2C[C@H]3N(C)CC[C@@]45[C@@H](Oc1c24)[C@@H](O)C=C[C@@H]35"),
    ("tramadol", "COc1cccc(c1)[C@@]1(O)CCCC[C@@H]1CN(C)C"),
    ("fentanyl", "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1"),
    ("methadone", "CCC(=O)C(CC(C)N(C)C)(c1ccccc1)c1ccccc1"),
    ("naloxone", "Oc1ccc2C[C@H]3N(CC=C)CC[C@@]45[C@@H](Oc1c24)C(=O)CC[C@@]35O"),
    ("lidocaine", "CCN(CC)CC(=O)Nc1c(C)cccc1C"),
    ("bupivacaine", "CCCCN1CCCCC1C(=O)Nc1c(C)cccc1C"),
    ("procaine", "CCN(CC)CCOC(=O)c1ccc(N)cc1"),
    ("ketamine", "CNC1(CCCCC1=O)c1ccccc1Cl"),
    ("propofol", "CC(C)c1cccc(C(C)C)c1O"),
    ("midazolam", "Cc1ncc2CN=C(c3ccccc3F)c3cc(Cl)ccc3-n12"),
    ("zolpidem", "CN(C)C(=O)Cc1c(nc2ccc(C)cn12)-c1ccc(C)cc1"),
    ("donepezil", "COc1cc2CC(CC3CCN(Cc4ccccc4)CC3)C(=O)c2cc1OC"),
    ("memantine", "CC12CC3CC(C)(C1)CC(N)(C3)C2"),
    ("levodopa", "N[C@@H](Cc1ccc(O)c(O)c1)C(=O)O"),
    ("methylphenidate", "COC(=O)C(C1CCCCN1)c1ccccc1"),
    ("modafinil", "NC(=O)CS(=O)C(c1ccccc1)c1ccccc1"),
    ("ondansetron", "Cc1nccn1CC1CCc2c(C1=O)c1ccccc1n2C"),
    ("metoclopramide", "CCN(CC)CCNC(=O)c1cc(Cl)c(N)cc1OC"),
    ("loperamide", "CN(C)C(=O)C(CCN1CCC(O)(CC1)c1ccc(Cl)cc1)(c1ccccc1)c1ccccc1"),
    ("allopurinol", "O=c1[nH]cnc2[nH]ncc12"),
    ("colchicine", "COc1cc2CC[C@H](NC(C)=O)C3=CC(=O)C(OC)=CC=C3c2c(OC)c1OC"),
    ("indometacin", "COc1ccc2n(C(=O)c3ccc(Cl)cc3)c(C)c(CC(=O)O)c2c1"),
    ("celecoxib", "Cc1ccc(cc1)-c1cc(nn1-c1ccc(cc1)S(N)(=O)=O)C(F)(F)F"),
    ("meloxicam", "Cc1cnc(NC(=O)C2=C(O)c3ccccc3S(=O)(=O)N2C)s1"),
    ("ketoprofen", "CC(C(=O)O)c1cccc(c1)C(=O)c1ccccc1"),
    ("mefenamic acid", "Cc1cccc(Nc2ccccc2C(=O)O)c1C"),
    ("glibenclamide", "COc1ccc(Cl)cc1C(=O)NCCc1ccc(cc1)S(=O)(=O)NC(=O)NC1CCCCC1"),
    ("glipizide", "Cc1cnc(cn1)C(=O)NCCc1ccc(cc1)S(=O)(=O)NC(=O)NC1CCCCC1"),
    ("pioglitazone", "CCc1ccc(CCOc2ccc(CC3SC(=O)NC3=O)cc2)nc1"),
    ("sitagliptin", "N[C@@H](CC(=O)N1CCn2c(C1)nnc2C(F)(F)F)Cc1cc(F)c(F)cc1F"),
    ("salmeterol", "OCc1cc(ccc1O)C(O)CNCCCCCCOCCCCc1ccccc1"),
    ("theobromine", "Cn1cnc2c1c(=O)[nH]c(=O)n2C"),
    ("acetazolamide", "CC(=O)Nc1nnc(s1)S(N)(=O)=O"),
    ("dapsone", "Nc1ccc(cc1)S(=O)(=O)c1ccc(N)cc1"),
    ("primaquine", "COc1cc(NC(C)CCCN)c2ncccc2c1"),
    ("chloroquine", "CCN(CC)CCCC(C)Nc1ccnc2cc(Cl)ccc12"),
    ("mefloquine", "OC(c1cc(nc2c(cccc12)C(F)(F)F)C(F)(F)F)C1CCCCN1"),
    ("praziquantel", "O=C(C1CCCCC1)N1CC2N(CCc3ccccc23)C(=O)C1"),
    ("albendazole", "CCCSc1ccc2[nH]c(NC(=O)OC)nc2c1"),
    ("propylthiouracil", "CCCc1cc(=O)[nH]c(=S)[nH]1"),
    ("thiamazole", "CN1C=CNC1=S"),
    ("baclofen", "NCC(CC(=O)O)c1ccc(Cl)cc1"),
    ("tizanidine", "Clc1ccc2nsnc2c1NC1=NCCN1"),
    ("buspirone", "O=C1CC2(CCCC2)CC(=O)N1CCCCN1CCN(CC1)c1ncccn1"),
    ("mirtazapine", "CN1CCN2C(C1)c1ccccc1Cc1cccnc21"),
    ("bupropion", "CC(NC(C)(C)C)C(=O)c1cccc(Cl)c1"),
    ("trazodone", "Clc1cccc(c1)N1CCN(CCCn2nc3ccccn3c2=O)CC1"),
    ("aripiprazole", "Clc1cccc(N2CCN(CCCCOc3ccc4CCC(=O)Nc4c3)CC2)c1Cl"),
    ("ziprasidone", "Clc1cc2NC(=O)Cc2cc1CCN1CCN(CC1)c1nsc2ccccc12"),
    ("valproic acid", "CCCC(CCC)C(=O)O"),
    ("levetiracetam", "CC[C@H](N1CCCC1=O)C(N)=O"),
    ("gabapentin", "NCC1(CC(=O)O)CCCCC1"),
    ("pregabalin", "CC(C)C[C@H](CN)CC(=O)O"),
    ("topiramate", "CC1(C)O[C@@H]2CO[C@@]3(COS(N)(=O)=O)OC(C)(C)O[C@H]3[C@@H]2O1"),
    ("ethosuximide", "CCC1(C)CC(=O)NC1=O"),
    ("phenobarbital", "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O"),
    ("primidone", "CCC1(c2ccccc2)C(=O)NCNC1=O"),
    ("zonisamide", "NS(=O)(=O)Cc1noc2ccccc12"),
    ("sumatriptan", "CNS(=O)(=O)Cc1ccc2[nH]cc(CCN(C)C)c2c1"),
    ("rizatriptan", "CN(C)CCc1c[nH]c2ccc(Cn3cncn3)cc12"),
    ("finasteride", "CC(C)(C)NC(=O)[C@H]1CC[C@H]2[C@@H]3CC[C@H]4NC(=O)C=C[C@]4(C)[C@H]3CC[C@]12C"),
    ("tamsulosin", "CCOc1ccccc1OCCN[C@H](C)Cc1ccc(OC)c(c1)S(N)(=O)=O"),
    ("oxybutynin", "CCN(CC)CC#CCOC(=O)C(O)(C1CCCCC1)c1ccccc1"),
    ("tolterodine", "CC(C)N(CC[C@H](c1ccccc1)c1cc(C)ccc1O)C(C)C"),
    ("apixaban", "COc1ccc(cc1)-n1nc(C(N)=O)c2CCN(C(=O)c12)c1ccc(cc1)N1CCCCC1=O"),
    ("rivaroxaban", "Clc1ccc(s1)C(=O)NC[C@H]1CN(C(=O)O1)c1ccc(cc1)N1CCOCC1=O"),
    ("tenofovir", "C[C@H](Cn1cnc2c(N)ncnc12)OCP(=O)(O)O"),
    ("fosfomycin", "C[C@@H]1O[C@@H]1P(=O)(O)O"),
    ("ribavirin", "NC(=O)c1ncn(n1)[C@@H]1O[C@H](CO)[C@@H](O)[C@H]1O"),
    ("lamivudine", "Nc1ccn([C@@H]2CS[C@H](CO)O2)c(=O)n1"),
    ("efavirenz", "FC(F)(F)[C@]1(OC(=O)Nc2ccc(Cl)cc12)C#CC1CC1"),
    ("nevirapine", "Cc1ccnc2N(C3CC3)c3ncccc3C(=O)Nc12"),
    ("terbinafine", "CN(C/C=C/C#CC(C)(C)C)Cc1cccc2ccccc12"),
    ("clotrimazole", "Clc1ccccc1C(c1ccccc1)(c1ccccc1)n1ccnc1"),
    ("miconazole", "Clc1ccc(COC(Cn2ccnc2)c2ccc(Cl)cc2Cl)c(Cl)c1"),
    ("ketoconazole", "CC(=O)N1CCN(CC1)c1ccc(OC[C@H]2CO[C@](Cn3ccnc3)(O2)c2ccc(Cl)cc2Cl)cc1"),
    ("nitrofurantoin", "O=C1CN(/N=C/c2ccc(o2)[N+](=O)[O-])C(=O)N1"),
    ("linezolid", "CC(=O)NC[C@H]1CN(C(=O)O1)c1ccc(N2CCOCC2)c(F)c1"),
    ("benzocaine", "CCOC(=O)c1ccc(N)cc1"),
    ("tetracaine", "CCCCNc1ccc(cc1)C(=O)OCCN(C)C"),
    ("dextromethorphan", "COc1ccc2C[C@H]3N(C)CC[C@@]4(CCCC[C@@H]34)c2c1"),
    ("guaifenesin", "COc1ccccc1OCC(O)CO"),
    ("pseudoephedrine", "CN[C@@H](C)[C@@H](O)c1ccccc1"),
    ("phenylephrine", "CNC[C@H](O)c1cccc(O)c1"),
    ("epinephrine", "CNC[C@H](O)c1ccc(O)c(O)c1"),
    ("melatonin", "COc1ccc2[nH]cc(CCNC(C)=O)c2c1"),
    ("mesalazine", "Nc1ccc(O)c(c1)C(=O)O"),
    ("sulfasalazine", "OC(=O)c1cc(ccc1O)/N=N/c1ccc(cc1)S(=O)(=O)Nc1ccccn1"),
    ("azathioprine", "Cn1cnc(c1[N+](=O)[O-])Sc1ncnc2nc[nH]c12"),
    ("mercaptopurine", "S=c1nc[nH]c2nc[nH]c12"),
    ("tranexamic acid", "NC[C@H]1CC[C@H](CC1)C(=O)O"),
    ("amiodarone", "CCCCc1oc2ccccc2c1C(=O)c1cc(I)c(OCCN(CC)CC)c(I)c1"),
    ("flecainide", "FC(F)(F)COc1ccc(OCC(F)(F)F)c(c1)C(=O)NCC1CCCCN1"),
    ("propafenone", "CCCNCC(O)COc1ccccc1C(=O)CCc1ccccc1"),
    ("sotalol", "CC(C)NCC(O)c1ccc(NS(C)(=O)=O)cc1"),
    ("carvedilol", "COc1ccccc1OCCNCC(O)COc1cccc2[nH]c3ccccc3c12"),
    ("bisoprolol", "CC(C)NCC(O)COc1ccc(COCCOC(C)C)cc1"),
    ("labetalol", "CC(CCc1ccccc1)NCC(O)c1ccc(O)c(c1)C(N)=O"),
    ("hydralazine", "NNc1nncc2ccccc12"),
    ("clonidine", "Clc1cccc(Cl)c1NC1=NCCN1"),
    ("prazosin", "COc1cc2nc(nc(N)c2cc1OC)N1CCN(CC1)C(=O)c1ccco1"),
    ("ezetimibe", "O[C@@H](CC[C@H]1C(=O)N(c2ccc(F)cc2)[C@@H]1c1ccc(O)cc1)c1ccc(F)cc1"),
    ("fenofibrate", "CC(C)OC(=O)C(C)(C)Oc1ccc(cc1)C(=O)c1ccc(Cl)cc1"),
    ("gemfibrozil", "Cc1ccc(C)c(OCCCC(C)(C)C(=O)O)c1"),
    ("probenecid", "CCCN(CCC)S(=O)(=O)c1ccc(cc1)C(=O)O"),
    ("bumetanide", "CCCCNc1cc(cc(c1Oc1ccccc1)S(N)(=O)=O)C(=O)O"),
    ("torasemide", "CC(C)NC(=O)NS(=O)(=O)c1cnccc1Nc1cccc(C)c1"),
    ("chlortalidone", "NS(=O)(=O)c1cc(ccc1Cl)C1(O)NC(=O)c2ccccc12"),
    ("triamterene", "Nc1nc(N)c2nc(-c3ccccc3)c(N)nc2n1"),
    ("amiloride", "NC(=N)NC(=O)c1nc(Cl)c(N)nc1N"),
    ("acetylcysteine", "CC(=O)N[C@@H](CS)C(=O)O"),
    ("penicillamine", "CC(C)(S)[C@@H](N)C(=O)O"),
    ("disulfiram", "CCN(CC)C(=S)SSC(=S)N(CC)CC"),
    ("naltrexone", "Oc1ccc2C[C@H]3N(CC4CC4)CC[C@@]45[C@@H](Oc1c24)C(=O)CC[C@@]35O"),
    ("varenicline", "C1C2CNCC1c1cc3nccnc3cc12"),
    ("atomoxetine", "CNCC[C@@H](Oc1ccccc1C)c1ccccc1"),
    ("duloxetine", "CNCC[C@H](Oc1cccc2ccccc12)c1cccs1"),
    ("desloratadine", "Clc1ccc2c(c1)CCc1cccnc1C2=C1CCNCC1"),
    ("fexofenadine", "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN1CCC(CC1)C(O)(c1ccccc1)c1ccccc1"),
    ("promethazine", "CC(CN1c2ccccc2Sc2ccccc12)N(C)C"),
    ("hydroxyzine", "OCCOCCN1CCN(CC1)C(c1ccccc1)c1ccc(Cl)cc1"),
    ("meclozine", "Cc1cccc(CN2CCN(CC2)C(c2ccccc2)c2ccc(Cl)cc2)c1"),
    ("famotidine", "NC(N)=Nc1nc(CSCC/C(N)=N/S(N)(=O)=O)cs1"),
    ("lansoprazole", "Cc1c(OCC(F)(F)F)ccnc1CS(=O)c1nc2ccccc2[nH]1"),
    ("pantoprazole", "COc1ccnc(CS(=O)c2nc3ccc(OC(F)F)cc3[nH]2)c1OC"),
    ("domperidone", "Clc1ccc2n(C3CCN(CCCn4c(=O)[nH]c5ccccc45)CC3)c(=O)[nH]c2c1"),
    ("bisacodyl", "CC(=O)Oc1ccc(cc1)C(c1ccc(OC(C)=O)cc1)c1ccccn1"),
    ("mebendazole", "COC(=O)Nc1nc2cc(ccc2[nH]1)C(=O)c1ccccc1"),
    ("tinidazole", "CCS(=O)(=O)CCn1c(C)ncc1[N+](=O)[O-]"),
    ("ethionamide", "CCc1cc(ccn1)C(N)=S"),
    ("quinine", "COc1ccc2nccc([C@@H](O)[C@@H]3C[C@@H]4CCN3C[C@@H]4C=C)c2c1"),
    ("artemisinin", "C[C@@H]1CC[C@H]2[C@@H](C)C(=O)O[C@@H]3O[C@@]4(C)CC[C@@H]1[C@]32OO4"),
    ("atovaquone", "OC1=C(C2CCC(CC2)c2ccc(Cl)cc2)C(=O)c2ccccc2C1=O"),
    ("pyrimethamine", "CCc1nc(N)nc(N)c1-c1ccc(Cl)cc1"),
    ("tacrine", "Nc1c2CCCCc2nc2ccccc12"),
    ("rasagiline", "C#CCN[C@@H]1CCc2ccccc12"),
    ("selegiline", "C#CCN(C)[C@H](C)Cc1ccccc1"),
    ("ropinirole", "CCCN(CCC)CCc1cccc2NC(=O)Cc12"),
    ("pramipexole", "CCCN[C@H]1CCc2nc(N)sc2C1"),
    ("entacapone", "CCN(CC)C(=O)/C(C#N)=C/c1cc(O)c(O)c(c1)[N+](=O)[O-]"),
    ("riluzole", "Nc1nc2ccc(OC(F)(F)F)cc2s1"),
    ("fingolimod", "CCCCCCCCc1ccc(CCC(N)(CO)CO)cc1"),
    ("teriflunomide", "C/C(O)=C(/C#N)C(=O)Nc1ccc(cc1)C(F)(F)F"),
    ("leflunomide", "Cc1oncc1C(=O)Nc1ccc(cc1)C(F)(F)F"),
    ("tofacitinib", "C[C@@H]1CCN(C[C@@H]1N(C)c1ncnc2[nH]ccc12)C(=O)CC#N"),
    ("ruxolitinib", "N#CC[C@H](C1CCCC1)n1cc(cn1)-c1ncnc2[nH]ccc12"),
    ("vemurafenib", "CCCS(=O)(=O)Nc1ccc(F)c(C(=O)c2c[nH]c3ncc(cc23)-c2ccc(Cl)cc2)c1F"),
    ("sorafenib", "CNC(=O)c1cc(Oc2ccc(NC(=O)Nc3ccc(Cl)c(c3)C(F)(F)F)cc2)ccn1"),
    ("bicalutamide", "CC(O)(CS(=O)(=O)c1ccc(F)cc1)C(=O)Nc1ccc(C#N)c(c1)C(F)(F)F"),
    ("flutamide", "CC(C)C(=O)Nc1ccc(c(c1)C(F)(F)F)[N+](=O)[O-]"),
    ("capecitabine", "CCCCCOC(=O)Nc1nc(=O)n(cc1F)[C@@H]1O[C@H](C)[C@@H](O)[C@H]1O"),
    ("temozolomide", "Cn1nnc2c(ncn2c1=O)C(N)=O"),
    ("busulfan", "CS(=O)(=O)OCCCCOS(C)(=O)=O"),
    ("chlorambucil", "OC(=O)CCCc1ccc(cc1)N(CCCl)CCCl"),
    ("melphalan", "N[C@@H](Cc1ccc(cc1)N(CCCl)CCCl)C(=O)O"),
    ("thalidomide", "O=C1CCC(N2C(=O)c3ccccc3C2=O)C(=O)N1"),
    ("lenalidomide", "Nc1cccc2C(=O)N(Cc12)C1CCC(=O)NC1=O"),
    ("anagrelide", "Clc1ccc2NC3=NC(=O)CN3Cc2c1Cl"),
    ("cinacalcet", "C[C@@H](NCCCc1cccc(c1)C(F)(F)F)c1cccc2ccccc12"),
    ("alendronic acid", "NCCCC(O)(P(=O)(O)O)P(=O)(O)O"),
    ("raloxifene", "Oc1ccc(cc1)-c1sc2cc(O)ccc2c1C(=O)c1ccc(OCCN2CCCCC2)cc1"),
    ("clomifene", "CCN(CC)CCOc1ccc(cc1)C(=C(Cl)c1ccccc1)c1ccccc1"),
    ("levonorgestrel", "CC[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@@H]34)[C@@H]1CC[C@]2(O)C#C"),
    ("progesterone", "CC(=O)[C@H]1CC[C@H]2[C@@H]3CCC4=CC(=O)CC[C@]4(C)[C@H]3CC[C@]12C"),
)


# ----------------------------------------------------------------------------- selection


def parent_key(smiles: str) -> str | None:
    """Canonical SMILES of the parent: largest fragment, neutralised, no stereo or atom maps, canonical tautomer."""
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    from grappa_like.molecule import rdkit_messages

    with rdkit_messages():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None
        for atom in mol.GetAtoms():
            atom.SetAtomMapNum(0)
        mol = rdMolStandardize.LargestFragmentChooser().choose(mol)
        mol = rdMolStandardize.Uncharger().uncharge(mol)
        Chem.RemoveStereochemistry(mol)
        mol = rdMolStandardize.TautomerEnumerator().Canonicalize(Chem.RemoveHs(mol))
        return Chem.MolToSmiles(mol)


def training_keys(paths) -> tuple[set[str], list[str]]:
    """Parent keys of every molecule in the given grappa_like-qm-v1 files, and the files actually read."""
    import h5py

    keys, read = set(), []
    for path in paths:
        if not os.path.exists(path):
            continue
        with h5py.File(path, "r") as handle:
            for group in handle.values():
                key = parent_key(str(group.attrs["smiles"]))
                if key:
                    keys.add(key)
        read.append(str(path))
    return keys, read


def select_molecules(n_molecules: int, seen: set[str]):
    """First ``n_molecules`` drugs of DRUGS that are valid input and not in ``seen``; plus the skipped ones."""
    from grappa_like import errors
    from grappa_like.molecule import from_smiles

    selected, skipped, keys = [], [], set()
    for name, smiles in DRUGS:
        if len(selected) == n_molecules:
            break
        key = parent_key(smiles)
        reason = None
        if key is None:
            reason = "SMILES does not parse"
        elif key in seen:
            reason = "in the training data (same parent structure)"
        elif key in keys:
            reason = "duplicate of an earlier entry"
        else:
            try:
                from_smiles(smiles, name)
            except errors.MoleculeInputError as error:
                reason = f"{type(error).__name__}: {error}"
        if reason:
            skipped.append({"name": name, "smiles": smiles, "reason": reason})
        else:
            keys.add(key)
            selected.append((name, smiles))
    return selected, skipped


# ----------------------------------------------------------------------------- one molecule


def simulate(name: str, smiles: str, model, settings: dict) -> dict:
    """Run the MD check (grappa_like.md_check) of one molecule and return its metrics (Å, kJ/mol)."""
    import grappa_like

    record = {"name": name, "smiles": smiles}
    start = time.perf_counter()
    (result,) = grappa_like.parameterize([smiles], model=model, progress=False)
    if not result.ok:
        return dict(record, status="not parameterized", error=f"{type(result.error).__name__}: {result.error}")
    parameters = result.parameters
    bonds = parameters.interactions.bonds
    system = result.to_openmm()
    constrained = np.zeros(len(bonds), dtype=bool)
    if settings["constraints"] == "hbonds":
        atomic_numbers = result.molecule.atomic_numbers
        for index, (i, j) in enumerate(bonds):
            if atomic_numbers[i] == 1 or atomic_numbers[j] == 1:
                system.addConstraint(int(i), int(j), float(parameters.bond_r0[index]))
                constrained[index] = True
    metrics = run_md_check(
        system, result.molecule.rdkit_mol, bonds, parameters.bond_r0 * 10.0,
        result.molecule.conformer_positions(seed=SEED),  # Å, ETKDG + MMFF94
        time_ps=settings["time_ps"], timestep_fs=settings["timestep_fs"], platform=settings["platform"],
        seed=SEED, constrained=constrained)
    metrics["max_r0_minus_mmff"] = metrics.pop("max_r0_minus_start")
    record.update(metrics, wall_seconds=round(time.perf_counter() - start, 2))
    return record


# ----------------------------------------------------------------------------- report


def markdown(report: dict) -> str:
    settings, rows = report["settings"], report["molecules"]
    ran = [r for r in rows if r["status"] != "not parameterized"]
    lines = [
        "# MD stability",
        "",
        f"Model: `{settings['model']}` (sha256 {settings['model_sha256'][:12]}). NVT Langevin, "
        f"{TEMPERATURE_K:.0f} K, friction {FRICTION_PER_PS:g}/ps, {settings['time_ps']:g} ps per molecule, "
        f"{settings['timestep_fs']:g} fs steps, constraints: {settings['constraints']}, platform "
        f"{settings['platform']}. Command: `{settings['command']}`.",
        "",
        f"Molecules: {len(rows)} drugs not in the training data ({len(report['skipped'])} of the list skipped; "
        f"training files checked: {', '.join(settings['training_data']) or 'none'}).",
        "",
        "| summary | count |",
        "| --- | --- |",
        f"| simulated | {len(ran)} |",
        f"| stable (all checks pass) | {sum(bool(r.get('stable')) for r in ran)} |",
        f"| blow-ups (NaN / energy explosion) | {sum(r['status'] == 'blow-up' for r in ran)} |",
        f"| with bond outliers (abs(r - r0) > {THRESHOLDS['bond_deviation_angstrom']} Å) | "
        f"{sum(r['n_bond_outliers'] > 0 for r in ran)} |",
        f"| aromatic ring out of plane > {THRESHOLDS['ring_out_of_plane_angstrom']} Å | "
        f"{sum(r['max_ring_out_of_plane'] > THRESHOLDS['ring_out_of_plane_angstrom'] for r in ran)} |",
        f"| chirality flips (signed volume or CIP, start vs end) | "
        f"{sum(bool(r['chirality_flips'] or r['cip_changes']) for r in ran)} |",
        f"| not parameterized | {len(rows) - len(ran)} |",
        "",
        "| molecule | atoms | status | max abs(r - r0) Å | bond outliers | max ring out-of-plane Å | stereocentres | "
        "flips | transient inversions | mean T (K) | stable |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["status"] == "not parameterized":
            lines.append(f"| {r['name']} | | not parameterized: {r['error']} | | | | | | | | no |")
            continue
        status = r["blow_up"] or "ran"
        lines.append(
            f"| {r['name']} | {r['n_atoms']} | {status} | {r['max_bond_deviation']:.3f} | {r['n_bond_outliers']} | "
            f"{r['max_ring_out_of_plane']:.3f} | {r['n_stereocentres']} | {len(r['chirality_flips'])} | "
            f"{len(r['transient_inversions'])} | {r['mean_temperature_k'] if r['mean_temperature_k'] else ''} | "
            f"{'yes' if r['stable'] else 'no'} |")
    return "\n".join(lines) + "\n"


def run(model_path: str | None, n_molecules: int, time_ps: float, timestep_fs: float, constraints: str,
        platform: str, training_data, output_dir, command: str = "") -> dict:
    """Select molecules, simulate each, write md_stability.md / .json to ``output_dir``; return the report."""
    import grappa_like

    model = grappa_like.load_model(model_path)
    seen, read = training_keys(training_data)
    selected, skipped = select_molecules(n_molecules, seen)
    settings = {
        "model": model.path, "model_sha256": model.checksum, "n_molecules": len(selected), "time_ps": time_ps,
        "timestep_fs": timestep_fs, "constraints": constraints, "platform": platform, "temperature_k": TEMPERATURE_K,
        "friction_per_ps": FRICTION_PER_PS, "sample_every_ps": SAMPLE_EVERY_PS, "seed": SEED,
        "training_data": read, "thresholds": THRESHOLDS, "command": command,
        "machine": f"{platform_module.machine()} {platform_module.processor() or ''}".strip(),
        "threads": os.environ.get("OMP_NUM_THREADS", ""),
    }
    molecules = [simulate(name, smiles, model, settings) for name, smiles in selected]
    report = {"settings": settings, "molecules": molecules, "skipped": skipped}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "md_stability.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (output_dir / "md_stability.md").write_text(markdown(report), encoding="utf-8")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model file (default: $GRAPPA_LIKE_MODEL, else the shipped model in models/)")
    parser.add_argument("--n-molecules", type=int, default=100)
    parser.add_argument("--time-ps", type=float, default=100.0, help="simulated time per molecule (ps)")
    parser.add_argument("--timestep-fs", type=float, default=1.0)
    parser.add_argument("--constraints", choices=("none", "hbonds"), default="none")
    parser.add_argument("--platform", default="CPU", help="OpenMM platform (CPU, CUDA, OpenCL, Reference)")
    parser.add_argument("--training-data", nargs="*", default=[str(p) for p in DEFAULT_TRAINING_DATA],
                        help="grappa_like-qm-v1 files whose molecules are excluded")
    parser.add_argument("--output-dir", default=str(REPOSITORY / "docs" / "md-stability"))
    args = parser.parse_args(argv)
    if args.n_molecules < 1 or args.time_ps <= 0 or args.timestep_fs <= 0:
        parser.error("--n-molecules, --time-ps and --timestep-fs must be positive")
    from grappa_like import errors

    try:
        report = run(args.model, args.n_molecules, args.time_ps, args.timestep_fs, args.constraints, args.platform,
                     args.training_data, args.output_dir, command="python scripts/md_stability.py " + " ".join(
                         sys.argv[1:] if argv is None else argv))
    except errors.ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
