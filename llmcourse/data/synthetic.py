"""Dirty documents with known defects, for testing a cleaning pipeline against ground truth.

A real crawl's defects are unlabelled, so you cannot measure how many a pipeline catches. Here
we take clean documents and plant the usual problems, recording in ``meta["planted"]`` what each
document is:

| planted | what it is |
|---|---|
| ``clean`` | an original document, untouched |
| ``exact_duplicate`` | a copy that differs only in case, spacing and line endings |
| ``near_duplicate`` | a copy with a few words replaced, deleted or inserted (``meta["jaccard"]``) |
| ``pii`` | an original with an e-mail, a phone number and an IP added (``meta["pii"]``) |
| ``boilerplate`` | navigation menus, cookie banners, keyword spam, placeholder text |
| ``foreign`` | a paragraph in French, German, Spanish, Arabic or Urdu (``meta["language"]``) |
| ``binary`` | random bytes, as an uploaded image would arrive |
| ``empty`` | nothing but whitespace |

Duplicates name their original in ``meta["source"]``; the PII documents replace their
originals (same id), so that deduplication cannot hide them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from llmcourse.data.dedup import jaccard, shingles
from llmcourse.data.document import Document

FOREIGN = {
    "fr": "Le traitement des données est une étape essentielle avant l'entraînement d'un modèle "
    "de langue. Nous devons supprimer les doublons, nettoyer le texte et vérifier la langue de "
    "chaque document. Sans ces précautions, le modèle apprend surtout les erreurs du corpus. "
    "C'est pourquoi les équipes consacrent beaucoup de temps à la préparation des données.",
    "de": "Die Vorbereitung der Daten ist ein wichtiger Schritt vor dem Training eines "
    "Sprachmodells. Doppelte Dokumente müssen entfernt und der Text muss bereinigt werden. Ohne "
    "diese Arbeit lernt das Modell vor allem die Fehler des Korpus. Deshalb verbringen viele "
    "Teams mehr Zeit mit den Daten als mit dem Modell.",
    "es": "La preparación de los datos es un paso fundamental antes de entrenar un modelo de "
    "lenguaje. Hay que eliminar los documentos duplicados y limpiar el texto con cuidado. Sin "
    "este trabajo, el modelo aprende sobre todo los errores del corpus. Por eso muchos equipos "
    "dedican más tiempo a los datos que al modelo.",
    "ar": "إعداد البيانات خطوة أساسية قبل تدريب النموذج اللغوي. يجب حذف الوثائق المكررة وتنظيف "
    "النصوص بعناية. بدون هذا العمل يتعلم النموذج أخطاء المدونة. لذلك تقضي فرق كثيرة وقتا أطول مع "
    "البيانات مقارنة بالنموذج.",
    "ur": "ڈیٹا کی تیاری زبان کے ماڈل کی تربیت سے پہلے ایک اہم قدم ہے۔ دہرائی گئی دستاویزات کو "
    "ہٹانا اور متن کو احتیاط سے صاف کرنا ضروری ہے۔ اس کام کے بغیر ماڈل زیادہ تر ڈیٹا کی غلطیاں "
    "سیکھتا ہے۔ اسی لیے بہت سی ٹیمیں ماڈل سے زیادہ وقت ڈیٹا پر لگاتی ہیں۔",
}

BOILERPLATE = (
    "Home | About us | Products | Pricing | Blog | Careers | Contact\n"
    + "\n".join(f"• {item}" for item in ("Shop", "Deals", "Gift cards", "Help", "Sign in"))
    + "\n© 2024 Example Corp. All rights reserved.",
    "We use cookies to improve your experience. By continuing to browse this site you agree "
    "to our use of cookies. Accept all cookies | Manage preferences",
    "cheap flights cheap flights best cheap flights book cheap flights now cheap flights deals "
    * 8,
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. " * 6,
    "Please enable JavaScript in your browser to view this page.\nLoading...\nLoading...\n"
    "Loading...",
    "Win big at the online casino tonight! Free spins, free money, no deposit needed. "
    "Join the casino now and claim your bonus before midnight. " * 3,
)

_NAMES = ("alice", "bob", "carol", "dmitri", "fatima", "li.wei", "omar", "priya")
_DOMAINS = ("example.com", "mail.example.org", "uni.example.ac.uk", "example.net")


def perturb(text: str, rate: float, rng: random.Random) -> str:
    """Edit about ``rate`` of the words: replace, delete or insert one, in equal shares."""
    words = text.split(" ")
    vocabulary = [w for w in words if w.strip()] or ["word"]
    for _ in range(max(1, round(rate * len(words)))):
        position = rng.randrange(len(words))
        action = rng.choice(("replace", "delete", "insert"))
        if action == "replace":
            words[position] = rng.choice(vocabulary)
        elif action == "delete" and len(words) > 1:
            del words[position]
        else:
            words.insert(position, rng.choice(vocabulary))
    return " ".join(words)


def restyle(text: str, rng: random.Random) -> str:
    """The same text after normalisation and case-folding, written differently."""
    styled = text.upper() if rng.random() < 0.5 else text
    return "  " + styled.replace("\n", "\r\n").replace(" ", rng.choice(("  ", "\u00a0", " \t")))


def fake_pii(rng: random.Random) -> tuple[str, dict[str, int]]:
    """A sentence with one e-mail address, one phone number and one IP address."""
    email = f"{rng.choice(_NAMES)}{rng.randrange(100)}@{rng.choice(_DOMAINS)}"
    phone = rng.choice(
        (
            f"+1 ({rng.randrange(200, 999)}) {rng.randrange(200, 999)}-{rng.randrange(10**4):04d}",
            f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
            f"{rng.randrange(200, 999)}-{rng.randrange(200, 999)}-{rng.randrange(10**4):04d}",
        )
    )
    ip = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    sentence = f"Write to {email} or call {phone}; the server is at {ip}."
    return sentence, {"email": 1, "phone": 1, "ip_address": 1}


def dirty_corpus(
    clean: Mapping[str, str] | Sequence[str],
    seed: int = 0,
    exact_duplicates: int = 20,
    near_duplicates: int = 20,
    near_duplicate_rate: tuple[float, float] = (0.002, 0.02),
    pii: int = 10,
    boilerplate: int = 12,
    foreign: int = 5,
    binary: int = 3,
    empty: int = 3,
) -> list[Document]:
    """The clean documents plus planted defects, shuffled (deterministic for a given ``seed``).

    Duplicates and near duplicates copy randomly chosen originals (PII goes in first, so a copy
    may carry it too); ``near_duplicate_rate`` bounds the share of words edited in a near
    duplicate.
    """
    rng = random.Random(seed)
    items = clean.items() if isinstance(clean, Mapping) else enumerate(clean)
    originals = [Document(text, f"clean-{key}", {"planted": "clean"}) for key, text in items]
    if not originals:
        raise ValueError("dirty_corpus needs at least one clean document to copy from.")
    planted: list[Document] = []
    for index in rng.sample(range(len(originals)), min(pii, len(originals))):
        # PII goes into originals (not copies), so deduplication cannot remove it for us.
        source = originals[index]
        paragraphs = source.text.split("\n\n")
        sentence, counts = fake_pii(rng)
        paragraphs.insert(rng.randrange(len(paragraphs) + 1), sentence)
        meta = {"planted": "pii", "pii": counts}
        originals[index] = Document("\n\n".join(paragraphs), source.id, meta)
    for i in range(exact_duplicates):
        source = rng.choice(originals)
        planted.append(
            Document(
                restyle(source.text, rng),
                f"exact-{i}",
                {"planted": "exact_duplicate", "source": source.id},
            )
        )
    for i in range(near_duplicates):
        source = rng.choice(originals)
        text = perturb(source.text, rng.uniform(*near_duplicate_rate), rng)
        similarity = jaccard(shingles(source.text), shingles(text))
        meta = {"planted": "near_duplicate", "source": source.id, "jaccard": similarity}
        planted.append(Document(text, f"near-{i}", meta))
    for i in range(boilerplate):
        text = BOILERPLATE[i % len(BOILERPLATE)]
        planted.append(Document(text, f"boilerplate-{i}", {"planted": "boilerplate"}))
    languages = sorted(FOREIGN)
    for i in range(foreign):
        language = languages[i % len(languages)]
        meta = {"planted": "foreign", "language": language}
        planted.append(Document(FOREIGN[language], f"foreign-{i}", meta))
    for i in range(binary):
        data = rng.randbytes(rng.randrange(200, 2000))
        planted.append(Document.from_bytes(data, f"binary-{i}", planted="binary"))
    for i in range(empty):
        planted.append(
            Document(rng.choice(("", " ", "\n\n\t \n")), f"empty-{i}", {"planted": "empty"})
        )
    corpus = originals + planted
    rng.shuffle(corpus)
    return corpus
