"""Data preparation: clean, filter, deduplicate and split text, then tokenise and pack it.

Text stages (each a generator over documents; chain them with ``Pipeline``):

| stage | module | what it does |
|---|---|---|
| ``Normalize`` | ``normalize`` | NFKC, line breaks, invisible characters; drops binary, empty |
| ``LanguageFilter`` | ``language`` | keeps the languages you ask for (py3langid) |
| ``QualityFilter`` | ``quality`` | Gopher's quality and repetition rules |
| ``C4Filter`` | ``c4`` | C4's line-level cleaning |
| ``BlocklistFilter`` | ``blocklist`` | drops documents with listed words |
| ``PerplexityFilter`` | ``perplexity`` | drops what a small LM finds implausible |
| ``ExactDedup``, ``NearDedup`` | ``dedup`` | normalised hashes; MinHash + LSH |
| ``ScrubPII`` | ``pii`` | e-mails, phone numbers, IPs become placeholders |
| ``TrainValSplit`` | ``split`` | tags each document train or val by its hash |

Stages pass ``Document`` objects (``document``) and ``Pipeline`` (``pipeline``) chains them;
``synthetic`` makes dirty documents with known defects to test a pipeline against.

Then tokens: ``packing`` (tokenise, add EOS, cut into blocks), ``tokenfile`` (memory-mapped
uint16/uint32 files with a JSON header), ``loaders`` (causal-LM datasets), ``collators``
(masked LM, T5 span corruption, supervised fine-tuning) and ``span_corruption`` (T5's noise);
those import torch and are not imported here. Task data: ``instructions`` (instruction pairs
from the plays and the Alpaca/ChatML templates), ``folio`` (First Folio ↔ modern spelling
line pairs for seq2seq) and ``arithmetic`` (problems with an exact checker and their own
character tokenizer: the verifiable task of lesson 09's GRPO and the capstone).
"""

from llmcourse.data.blocklist import BlocklistFilter
from llmcourse.data.c4 import C4Filter
from llmcourse.data.dedup import ExactDedup, NearDedup, jaccard_estimate, minhash
from llmcourse.data.document import Document, Dropped, Stage, documents
from llmcourse.data.language import LanguageFilter, identify_language
from llmcourse.data.normalize import Normalize, normalize_text
from llmcourse.data.perplexity import PerplexityFilter
from llmcourse.data.pii import ScrubPII, scrub_pii
from llmcourse.data.pipeline import Pipeline, PipelineReport
from llmcourse.data.quality import QualityFilter
from llmcourse.data.split import TrainValSplit, assign_split

__all__ = [
    "BlocklistFilter",
    "C4Filter",
    "Document",
    "Dropped",
    "ExactDedup",
    "LanguageFilter",
    "NearDedup",
    "Normalize",
    "PerplexityFilter",
    "Pipeline",
    "PipelineReport",
    "QualityFilter",
    "ScrubPII",
    "Stage",
    "TrainValSplit",
    "assign_split",
    "documents",
    "identify_language",
    "jaccard_estimate",
    "minhash",
    "normalize_text",
    "scrub_pii",
]
