# %% [markdown]
# ## Measuring a safety filter
#
# *(Lesson 10 section, percent-format cells: paste each `# %%` block as a notebook cell.
# Runs on its own too: `python lessons/scripts/safety_section.py`.)*
#
# A filter that nobody measured is a guess. We score three filters, and a peer from PyPI, on
# the course's **safety set**: 340 prompts and model outputs labelled harmful or benign under
# rules written before any item was (`llmcourse/ethics/data/LABELLING.md`). Harmful items
# state an intent or open a compliant answer, and stop before any instructions. The benign side
# is deliberately hard: dosing questions, the history of sarin, crime fiction, security
# advice, refusals that repeat the request's words. A **held-out split** is never used to
# fit or tune anything.

# %%
from collections import Counter

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from llmcourse import show
from llmcourse.ethics import (
    CombinedModerator,
    SafetyFilter,
    evaluate,
    f1_difference,
    misses,
    safety_classifier,
    safety_set,
    stored_report,
)
from llmcourse.ethics.safety_eval import stored_benchmark

train, test = safety_set("train"), safety_set("test")
counts = Counter((item.split, item.label) for item in train + test)
display(
    Markdown(
        f"{len(train) + len(test)} items: {len(train)} to train on "
        f"({counts['train', 'harmful']} harmful), {len(test)} held out "
        f"({counts['test', 'harmful']} harmful, "
        f"{sum(i.hard for i in test if not i.harmful)} of the benign ones hard)."
    )
)

# %% [markdown]
# The three filters: the **phrase list** from before; **logistic regression on MiniLM
# sentence embeddings**, whose regularisation and threshold were chosen by 5-fold
# cross-validation on the training split only; and the **two combined** (flag if either
# flags). The first call trains the classifier (seconds) and caches it.

# %%
show(safety_classifier)

# %%
phrases, classifier = SafetyFilter(), safety_classifier()
moderators = [phrases, classifier, CombinedModerator(phrases, classifier)]
reports = [evaluate(m, test) for m in moderators]
# The peer, alt-profanity-check (PyPI, MIT), pins exact scikit-learn/joblib versions, so it runs
# in benchmarks/bench_safety.py; its decisions on these same items are stored with the package.
reports.append(stored_report("alt-profanity-check", test))
table = pd.DataFrame([r.row() for r in reports]).set_index("filter")
table[["precision", "recall", "f1", "hard_benign_fpr"]]

# %% [markdown]
# Each number comes with a 95% bootstrap interval over the held-out items (2,000 resamples,
# the same resamples for every filter). The bars show them.

# %%
long = pd.DataFrame(
    [
        {"filter": r.name, "metric": metric, "value": e.value, "low": e.low, "high": e.high}
        for r in reports
        for metric, e in (("precision", r.precision), ("recall", r.recall), ("F1", r.f1))
    ]
)
fig, ax = plt.subplots(figsize=(10, 3.8))
sns.barplot(data=long, x="metric", y="value", hue="filter", ax=ax, errorbar=None)
bar_groups = list(ax.containers)  # one per filter; error bars below add containers of their own
for bar_group, (_, group) in zip(bar_groups, long.groupby("filter", sort=False), strict=True):
    for bar, (_, row) in zip(bar_group, group.iterrows(), strict=True):
        x = bar.get_x() + bar.get_width() / 2
        ax.errorbar(x, row.value, yerr=[[row.value - row.low], [row.high - row.value]],
                    color="black", capsize=3, linewidth=1)  # fmt: skip
ax.set_ylim(0, 1.05)
ax.set_ylabel("score (0 to 1)")
ax.set_xlabel("")
ax.set_title(f"Safety filters on {len(test)} held-out texts (95% bootstrap intervals)")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="filter")

plt.show()

# %%
by_name = {r.name: r for r in reports}
learned, listed = by_name[classifier.name], by_name[phrases.name]
difference = f1_difference(learned, listed, test)
assert difference.low > 0, "the classifier's F1 advantage should exceed resampling noise"
display(
    Markdown(
        f"The classifier's F1 exceeds the phrase list's by **{difference.value:.2f}** "
        f"(paired 95% interval {difference.low:.2f} to {difference.high:.2f}). The phrase list "
        f"catches {listed.recall.value:.0%} of harmful texts: only those that use its words. "
        f"The classifier catches {learned.recall.value:.0%}, and pays for it: it flags "
        f"{learned.hard_benign_fpr.value:.0%} of the hard benign texts (the phrase list "
        f"{listed.hard_benign_fpr.value:.0%}). The profanity model catches "
        f"{by_name['alt-profanity-check'].recall.value:.0%}: requests for harm are mostly "
        "polite, and a filter trained for another task measures that task."
    )
)

# %% [markdown]
# **Read the mistakes, not just the scores.** Harmful texts the phrase list let through, and
# benign texts the classifier blocked:

# %%
list_missed = misses(listed, test).false_negatives
classifier_blocked = misses(learned, test).false_positives


def one_per_category(items: list) -> list:
    """The first item of each category, so the examples are not all of one kind."""
    firsts = {}
    for item in items:
        firsts.setdefault(item.category, item)
    return list(firsts.values())


for title, items in (
    ("Phrase list, harmful but allowed", one_per_category(list_missed)),
    ("Classifier, benign but flagged", one_per_category(classifier_blocked)[:6]),
):
    print(title)
    for item in items:
        print(f"  [{item.category}, {item.kind}] {item.text}")
topics = Counter(item.category for item in classifier_blocked)
display(
    Markdown(
        f"The classifier's {len(classifier_blocked)} false positives by topic: "
        + ", ".join(f"{topic} {n}" for topic, n in topics.most_common())
        + ". Refusals and security advice use the same words as the requests they answer, "
        "everyday idioms borrow them, and with a threshold "
        f"as low as {classifier.threshold:.2f} on the harm score (F1 on the training folds "
        "rewards recall) some plain requests are flagged too. A deployment that blocks on "
        "this score would turn away people asking about medicine and their own safety."
    )
)

# %% [markdown]
# **How far does the held-out score travel?** One person wrote every item, train and test
# alike, so a classifier can learn that person's way of phrasing harm. The benchmark also ran
# the filters on 281 harmful prompts written by others (StrongREJECT, Souly et al. 2024; MIT).

# %%
external = stored_benchmark()["strongreject"]["rows"]
ours = external[classifier.name]
assert ours["recall"] < learned.recall.value, "the prose below says recall drops off our set"
display(
    Markdown(
        f"On StrongREJECT's prompts the classifier's recall is **{ours['recall']:.0%}** "
        f"(95% interval {ours['low']:.0%} to {ours['high']:.0%}), against "
        f"{learned.recall.value:.0%} on our held-out split; the phrase list's is "
        f"{external[phrases.name]['recall']:.1%}. A held-out split from the same source "
        "measures the same source: test a filter on text written by someone else before "
        "trusting its number."
    )
)

# %% [markdown]
# **What a filter cannot do.**
#
# - It judges text, not intent or consequence: "how much paracetamol is too much" is the same
#   string from a worried parent and from someone in crisis. The set labels the words; a
#   deployment must decide what to *do* with a flag (block, answer with support, log).
# - It sees one message. Harm split across turns, or across a question and a follow-up that
#   each look harmless, passes a per-message filter.
# - Its scores hold for text like its labelled set: English, short, one author's style. Other
#   languages, misspellings, role-play framing and long documents are untested here, and the
#   StrongREJECT drop shows how fast a number moves off its own data.
# - Every threshold trades false negatives for false positives; the false positives fall on
#   people asking about medicine, history, security and their own safety. Choose the trade
#   with the people it affects, and re-measure when the traffic changes.
# - A filter on the output does not make the model safe: it hides some outputs after the
#   model produced them, and a determined user rephrases until one passes.
