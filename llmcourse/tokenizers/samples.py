"""Short parallel texts in English, Arabic and Urdu for measuring tokenizer fertility.

The course authors wrote these paragraphs for llmcourse (they are not taken from any corpus):
six everyday scenes (the weather, the market, dinner, school, a train journey, phones), said
the same way in each language so that token counts compare like with like. The Arabic is
Modern Standard Arabic; the Urdu is everyday written Urdu. They are free to use with the course.

``sample_text(language, split)`` returns the paragraphs joined by blank lines; ``split="train"``
is the first four paragraphs (what a tokenizer may learn from) and ``"test"`` the last two
(held out, so a tokenizer is never measured on text it was trained on).
"""

from __future__ import annotations

from typing import Literal

SAMPLES: dict[str, tuple[str, ...]] = {
    "english": (
        "Every morning I wake up early and open the window to check the weather. Today the sky "
        "is clear and the air is cool, so I will walk to work instead of taking the bus. My "
        "neighbour has been watering the plants in his small garden since dawn.",
        "On Saturdays my family goes to the market near our house. We buy fresh vegetables, "
        "fruit and bread, and sometimes a little fish. The sellers know us well, and they "
        "always tell us which tomatoes are the sweetest this week.",
        "In the evening my mother cooks rice with lentils, and my brother makes a salad of "
        "cucumbers and tomatoes. We sit together at the table and talk about our day. After "
        "dinner we drink tea and eat dates.",
        "My sister is in her last year at school. She studies mathematics and science every "
        "night, because she wants to become a doctor. Her teacher says that she asks good "
        "questions and helps her classmates.",
        "Last summer we travelled by train to visit our grandparents in a small town by the "
        "sea. The journey took six hours, and we watched fields, rivers and villages pass by "
        "the window. Our grandmother was waiting for us at the station.",
        "These days everyone carries a phone. We use it to send messages, read the news and "
        "pay in shops. Still, I try to put my phone aside before sleeping, because a good "
        "night's rest matters more than any message.",
    ),
    "arabic": (
        "أستيقظ كل صباح باكرًا وأفتح النافذة لأرى حالة الطقس. السماء اليوم صافية والهواء "
        "منعش، لذلك سأمشي إلى العمل بدلًا من ركوب الحافلة. جاري يسقي النباتات في حديقته "
        "الصغيرة منذ الفجر.",
        "في أيام السبت تذهب عائلتي إلى السوق القريب من بيتنا. نشتري الخضار الطازجة والفواكه "
        "والخبز، وأحيانًا قليلًا من السمك. يعرفنا البائعون جيدًا، ويخبروننا دائمًا أيّ "
        "الطماطم أحلى هذا الأسبوع.",
        "في المساء تطبخ أمي الأرز مع العدس، ويُعدّ أخي سلطة من الخيار والطماطم. نجلس معًا "
        "حول المائدة ونتحدث عن يومنا. وبعد العشاء نشرب الشاي ونأكل التمر.",
        "أختي في سنتها الأخيرة في المدرسة. تدرس الرياضيات والعلوم كل ليلة لأنها تريد أن تصبح "
        "طبيبة. تقول معلمتها إنها تطرح أسئلة جيدة وتساعد زميلاتها في الصف.",
        "في الصيف الماضي سافرنا بالقطار لزيارة جدّينا في بلدة صغيرة على البحر. استغرقت الرحلة "
        "ست ساعات، وكنا نشاهد الحقول والأنهار والقرى تمر من النافذة. كانت جدتنا تنتظرنا في "
        "المحطة.",
        "في هذه الأيام يحمل الجميع هاتفًا. نستخدمه لإرسال الرسائل وقراءة الأخبار والدفع في "
        "المتاجر. ومع ذلك أحاول أن أضع هاتفي جانبًا قبل النوم، لأن الراحة الجيدة في الليل "
        "أهم من أي رسالة.",
    ),
    "urdu": (
        "میں ہر صبح جلدی اٹھتا ہوں اور موسم دیکھنے کے لیے کھڑکی کھولتا ہوں۔ آج آسمان صاف ہے "
        "اور ہوا ٹھنڈی ہے، اس لیے میں بس کے بجائے پیدل کام پر جاؤں گا۔ میرا پڑوسی صبح سویرے "
        "سے اپنے چھوٹے سے باغ میں پودوں کو پانی دے رہا ہے۔",
        "ہفتے کے دن میرا خاندان گھر کے قریب بازار جاتا ہے۔ ہم تازہ سبزیاں، پھل اور روٹی "
        "خریدتے ہیں، اور کبھی کبھی تھوڑی سی مچھلی بھی۔ دکاندار ہمیں اچھی طرح جانتے ہیں اور "
        "ہمیشہ بتاتے ہیں کہ اس ہفتے کون سے ٹماٹر سب سے میٹھے ہیں۔",
        "شام کو میری امی دال چاول پکاتی ہیں، اور میرا بھائی کھیرے اور ٹماٹر کا سلاد بناتا "
        "ہے۔ ہم سب مل کر میز پر بیٹھتے ہیں اور اپنے دن کے بارے میں باتیں کرتے ہیں۔ کھانے "
        "کے بعد ہم چائے پیتے ہیں اور کھجوریں کھاتے ہیں۔",
        "میری بہن اسکول کے آخری سال میں ہے۔ وہ ہر رات ریاضی اور سائنس پڑھتی ہے کیونکہ وہ "
        "ڈاکٹر بننا چاہتی ہے۔ اس کی استانی کہتی ہیں کہ وہ اچھے سوال پوچھتی ہے اور اپنی ہم "
        "جماعتوں کی مدد کرتی ہے۔",
        "پچھلی گرمیوں میں ہم ٹرین سے اپنے دادا دادی سے ملنے سمندر کے کنارے ایک چھوٹے سے قصبے "
        "گئے۔ سفر چھ گھنٹے کا تھا، اور ہم کھڑکی سے کھیت، دریا اور گاؤں گزرتے دیکھتے رہے۔ "
        "دادی اماں اسٹیشن پر ہمارا انتظار کر رہی تھیں۔",
        "آج کل ہر کسی کے پاس فون ہوتا ہے۔ ہم اس سے پیغام بھیجتے ہیں، خبریں پڑھتے ہیں اور "
        "دکانوں میں ادائیگی کرتے ہیں۔ پھر بھی میں سونے سے پہلے فون ایک طرف رکھنے کی کوشش "
        "کرتا ہوں، کیونکہ رات کا اچھا آرام کسی بھی پیغام سے زیادہ اہم ہے۔",
    ),
}

TRAIN_PARAGRAPHS = 4


def sample_text(language: str, split: Literal["all", "train", "test"] = "all") -> str:
    """The sample of ``language`` ("english", "arabic", "urdu"), blank lines between paragraphs."""
    if language not in SAMPLES:
        raise ValueError(f"No sample for {language!r}; choose one of {sorted(SAMPLES)}.")
    paragraphs = SAMPLES[language]
    chosen = {
        "all": paragraphs,
        "train": paragraphs[:TRAIN_PARAGRAPHS],
        "test": paragraphs[TRAIN_PARAGRAPHS:],
    }.get(split)
    if chosen is None:
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}.")
    return "\n\n".join(chosen)
