"""Do the papers reproduce? Each finding run with its paper's protocol, beside the paper's numbers.

Findings
--------
First paper (Amjad, Liu & Geiger), 784-100-100-10 and 784-20-20-10 MLPs trained with RMSprop
(learning rate 1e-3, momentum 0.01, batch 32) on 80 % of the training set, L2 (weight decay 1e-4)
or Dropout (0.3 / 0.4); measures on the validation 20 %, ablation on the test set:

``A1`` (Fig. 1)
    Entropy, mutual information and KL selectivity grow from hidden layer 1 to layer 2
    (ReLU, L2 and Dropout). Per seed: mean over fc2's units minus mean over fc1's.
``A2`` (Figs. 3 and 4)
    Layer-wise cumulative ablation: low-first beats random and high-first loses to it (MG@80),
    for ReLU/L2, ReLU/Dropout, sigmoid/L2 ablated to the mean, sigmoid/Dropout, ReLU with
    BatchNorm and Dropout, and the small architecture (L2, Dropout); random ablation hurts fc1
    more than fc2 (Kolmogorov-Smirnov).
``A3`` (Fig. 2, Simpson's paradox)
    Whole-network ablation with Dropout: low-entropy / low-MI first does *worse* than random
    (MG@101), while layer-wise (fc1, MG@80) low-MI first does better; with L2 it is on par.

Second paper (Clauw, Marinazzo & Stramaglia), 784-20-20-20-10 ReLU MLPs, SGD (learning rate 0.01,
batch 32), 50 epochs, no regularisation, 20 networks; units read before the activation on the
test set:

``C1`` (Fig. 1)
    Per layer, min / max O-information of multiplets of every size (exhaustive to 6 units, then
    greedy): the first layer is redundancy-dominated, the last synergy-dominated. Per seed and
    layer: the summed redundancy minus the summed synergy
    (:func:`prune_info.analysis.oinfo.dominance`).
``C2`` (Fig. 2)
    The best synergistic multiplet of ``k`` units per layer (from C1's search), retrained from its
    initial weights with the other units frozen, loses the least accuracy, against ``k`` random
    units and the ``k`` units of highest Gaussian-copula MI (mixture and ANOVA forms), which
    perform like random. Reported for the paper's variant (``C2``: rest frozen) and for
    ``C2-removed`` (rest cut out), from the same run.

Beyond the papers, the next steps the second paper names (Sec. 5, line 94): ``C1-wide`` /
``C2-wide`` are C1 / C2 on 784-100-100-10 (the first paper's wide MLP, trained with the second
paper's SGD protocol); ``C1-conv`` is C1 on the eight convolutional layers of a VGG-11-bn
layout (:data:`VGG11_BN_EIGHTH`: VGG-11's stages at 1/8 of its channels, BatchNorm) trained on
FashionMNIST resized to 32×32, each channel averaged over its feature map into one value (the
paper's "naive solution"). C2 on convolutional layers is not offered: its 16 sub-networks per
network (4 selections x 2 sizes x 2 treatments of the rest) would be 16 CNN trainings each,
about 3 hours for 6 networks on 2 cores.

Scales
------
``paper`` keeps every stated detail of both protocols except two counts, to bound the run on a
2-core machine: **20 networks per setting for the first paper** (it trains 50; ``--seeds 50``
restores that) and C2's sub-networks retrained for 10 epochs at sizes k = 5 and 10 (the paper
states neither). The first paper's epochs are 20 for every setting (it chose 8 to 30 per setting
without listing them). The wide family (beyond the papers) trains 10 networks for 20 epochs.
Every such difference is listed per finding in ``findings.json`` (``differences``). ``toy``
runs the same code on digits-sized layers with 6 seeds and 1 epoch: for tests and a first look,
not evidence.

Verdicts
--------
:data:`RULE` (also written into ``findings.json``): every finding is a list of *panels*, each a
paired comparison over seeds with the paper's direction ``+`` / ``-`` or a claim of similarity
``≈``. A directional panel *agrees* when our mean has the paper's sign and the test gives
p < 0.05, *leans* when the sign holds without significance (or with too few seeds for a p-value),
and *disagrees* otherwise; a ``≈`` panel agrees when p >= 0.05 and disagrees otherwise. That is
stricter than the paper, which calls behaviour similar when "the mean gap is small or p > 0.05"
(Sec. V): here a small but significant gap disagrees, and more seeds make a ``≈`` harder to meet.
A finding is **reproduced** when every panel agrees, **partly** when at least one agrees or
leans, **not reproduced** otherwise. Nothing is tuned to
agree: the protocol is fixed before the run.

Run directory
-------------
``DIR/reproduce.json`` fixes the protocol (scale, data, seed and epoch overrides); a directory
of another protocol is refused. The first paper's networks live in resumable study directories
(``DIR/study-*``, :func:`prune_info.experiments.study.run_study`; one study serves A1, A2 and A3),
the second paper's networks in ``DIR/nets-c*`` (a study with one random ordering), each seed's
C1 search in ``DIR/c1*/seed-NNNN.json`` and each seed's C2 retraining in
``DIR/c2*/seed-NNNN.json``. C1 and C2 run as :class:`~prune_info.experiments.executor.Task`
objects, one per seed, through the chosen executor; the driver stores each result as it arrives.
A second run reuses everything and writes the same ``findings.json``; a run of other findings
into the same directory adds them to it (the findings it does not recompute are kept). Wall
times go to ``DIR/timings.json``, summed per stage over every run (never into the findings).
"""

from prune_info.experiments.reproduce.protocols import FINDINGS, SCALES, ReproduceOptions
from prune_info.experiments.reproduce.run import FINDINGS_FORMAT, run_reproduce
from prune_info.experiments.reproduce.table import format_findings
from prune_info.experiments.reproduce.verdicts import RULE, panel_status, verdict

__all__ = [
    "FINDINGS", "FINDINGS_FORMAT", "RULE", "SCALES", "ReproduceOptions", "format_findings",
    "panel_status", "run_reproduce", "verdict",
]
