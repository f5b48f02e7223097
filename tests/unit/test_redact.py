"""Email text that contacts read carries no sign-off, name or address of the learner."""

from __future__ import annotations

import unicodedata

import pytest

from escalation.redact import (
    REMOVED,
    drop_signature,
    redact_identities,
    redact_identity,
)
from escalation.redact import _fold_character as _fold_character  # the cache the fast path spares
from intake.service import in_confidence


def test_the_sign_off_and_everything_after_it_is_dropped() -> None:
    text = (
        "I was left alone on nights in the Emergency Department.\n"
        "Nobody answered the bleep.\n\nKind regards,\nJane Smith\nFY1, Vale General"
    )
    assert drop_signature(text) == (
        "I was left alone on nights in the Emergency Department.\nNobody answered the bleep."
    )


def test_a_thanks_early_in_a_long_story_is_part_of_the_story() -> None:
    story = "Thanks to the ward sister I was safe.\n" + "\n".join(f"line {n}" for n in range(20))
    assert drop_signature(story) == story


def test_phone_footers_are_dropped() -> None:
    assert drop_signature("No teaching for weeks.\n\nSent from my iPhone") == (
        "No teaching for weeks."
    )


def test_a_sign_off_above_a_signature_block_and_a_phone_footer_is_dropped() -> None:
    """The footer alone was dropped, leaving the name, course, university and mobile number
    for the supervisor to read."""
    text = (
        "Most nights I get left on my own with 12 patients.\n\nThanks\nJess\n\n"
        "Jessica Okafor\nStudent Nurse, Adult Nursing Year 2\nValetown University\n"
        "07700 900123\n\nSent from my iPhone\n"
    )
    assert drop_signature(text) == "Most nights I get left on my own with 12 patients."


def test_only_a_phone_footer_makes_it_look_again() -> None:
    """Under a sign-off it does not: a "Thanks to ..." of the story, now near the end, stays."""
    story = "Hi\nThanks to the ward sister I was safe.\n" + "\n".join("abcdefg")
    assert drop_signature(f"{story}\nRegards\nJane") == story


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("Call me on 07700 900123.", "Call me on [phone number removed]."),
        ("07700900123", "[phone number removed]"),
        ("+44 7700 900123", "[phone number removed]"),
        ("+44 (0)7700 900-123", "[phone number removed]"),
        ("(07700) 900123", "[phone number removed]"),
        ("0044 7700 900123", "[phone number removed]"),
        ("077009 00123", "[phone number removed]"),
        # A ward's landline, and digits that are not a phone number, stay.
        ("Ward 7 is on 01234 567890", "Ward 7 is on 01234 567890"),
        ("Datix 107700900123", "Datix 107700900123"),
    ],
)
def test_a_confidential_learners_mobile_number_is_taken_out(written: str, kept: str) -> None:
    assert in_confidence(written, names=("Jess Okafor",), address=None) == kept


def test_a_story_line_starting_thanks_to_above_a_phone_footer_is_kept() -> None:
    """The reviewer's story: above a footer, only a sign-off line of its own is one."""
    story = [
        "I was left alone on nights with 30 patients on Ward 7.",
        "Thanks to the staffing gaps, two patients fell and one was badly injured.",
        "The registrar was covering three wards and did not answer the bleep.",
        "I called the site manager twice.",
        "Nobody came for four hours.",
        "This has happened every week this month.",
        "My teaching has been cancelled every time too.",
        "I am worried someone will die.",
        "Please can someone look at the night rota.",
    ]
    assert drop_signature("\n".join([*story, "Sent from my iPhone"])) == "\n".join(story)


def test_the_name_and_address_are_replaced_wherever_they_appear() -> None:
    text = (
        "This is Jane (jane.smith@example.nhs.uk). SMITH is my surname; Dr Jane Smith. "
        "Dr Patel said no."
    )
    result = redact_identity(text, name="Dr Jane Smith", address="jane.smith@example.nhs.uk")
    assert "jane" not in result.lower()
    assert "smith" not in result.lower()
    assert result.count(REMOVED) >= 4
    assert "Dr Patel said no." in result  # titles are not names


def test_parts_of_other_words_are_kept() -> None:
    # "Ann" must not be cut out of "annual" or "planning".
    result = redact_identity("annual leave planning", name="Ann Lee", address=None)
    assert result == "annual leave planning"


def test_what_an_email_concern_keeps_for_contacts_has_neither_signature_nor_name() -> None:
    text = "I am Sam Jones, a nurse.\nNo mentor for 3 weeks.\n\nThanks\nSam"
    result = in_confidence(
        drop_signature(text), names=("Sam Jones",), address="sam.jones@uni.example.ac.uk"
    )
    assert "Sam" not in result and "Jones" not in result
    assert "No mentor for 3 weeks." in result


def test_an_address_written_in_the_name_goes_as_the_senders_does() -> None:
    text = "I am Jane Smith (jsmith@nhs.example); jsmith on the rota, x9 on the ward."
    result = redact_identity(
        text, name="Jane Smith (jsmith@nhs.example)", address="x9@student.example.ac.uk"
    )
    assert result == (f"I am {REMOVED} ({REMOVED}); {REMOVED} on the rota, x9 on the ward.")


def test_words_beside_an_address_in_the_names_brackets_are_not_the_name() -> None:
    text = (
        "On behalf of the FY1s: the rota sent via the ward leaves Jane alone on nights, and "
        "bob.jones@nhs.example knows."
    )
    result = redact_identity(
        text,
        name="Jane Smith (on behalf of bob.jones@nhs.example via ward)",
        address="jane.smith@nhs.example",
    )
    # The name and both addresses go (the one in the name may be the sender's too); "behalf"
    # and "via", written beside the address, stay. "ward" goes: Ward may be a surname.
    assert result == (
        f"On behalf of the FY1s: the rota sent via the {REMOVED} leaves {REMOVED} alone on "
        f"nights, and {REMOVED} knows."
    )


@pytest.mark.parametrize(
    "name",
    [
        "Jane Smith (née Patel, jane.smith@nhs.example)",
        "Dr Smith (Patel, p.smith2@nhs.example)",
        "(Patel jsp@nhs.example)",
        "Jane Smith <Patel jsp@nhs.example>",
        "Jane Smith [Patel jsp@nhs.example]",
        "Jane (Smith (Patel jsp@nhs.example))",
    ],
)
def test_a_name_written_beside_an_address_in_brackets_still_goes(name: str) -> None:
    # A maiden name or a first name may be written only there: taking every such word as part
    # of the name removes a few ordinary words too, but never leaves the learner named.
    result = redact_identity("Patel was on nights.", name=name, address="x9@nhs.example")
    assert result == f"{REMOVED} was on nights."


def test_each_half_of_a_double_barrelled_name_goes() -> None:
    result = redact_identity(
        "Smith said Jones and Mary could swap.", name="Mary-Jane Smith-Jones", address=None
    )
    assert result == f"{REMOVED} said {REMOVED} and {REMOVED} could swap."


@pytest.mark.parametrize(
    "name",
    [
        "Jane.Smith",
        "Jane_Smith",
        "Jane/Smith",
        "Jane:smith@nhs.example",
        "Jane\uff08smith@nhs.example\uff09",  # full-width brackets
    ],
)
def test_a_name_written_with_other_marks_between_its_parts_still_goes(name: str) -> None:
    # Mail clients write 'Jane.Smith' as a display name; any mark may stand between the parts.
    result = redact_identity("Smith and Jane were on nights.", name=name, address=None)
    assert result == f"{REMOVED} and {REMOVED} were on nights."


@pytest.mark.parametrize(
    "name",
    [
        "SMITH, Jane (VALE GENERAL HOSPITALS NHS TRUST)",
        "Jane Smith (Vale General Hospitals NHS Foundation Trust)",
        "SMITH, Jane [VALE GENERAL HOSPITALS NHS TRUST]",
    ],
)
def test_the_organisation_nhsmail_writes_after_a_name_is_not_the_name(name: str) -> None:
    # NHSmail shows every sender as 'SURNAME, Forename (ORGANISATION)': its words are not the
    # learner's, and the placement the learner names must still reach the contacts.
    story = "I am a foundation doctor at Vale General Hospitals NHS Trust; the trust knows."
    result = redact_identity(f"{story} Jane Smith, FY1.", name=name, address="jane.smith5@nhs.net")
    assert result.startswith(f"{story} {REMOVED}")
    assert "Jane" not in result and "Smith" not in result


def test_words_in_brackets_that_name_no_organisation_are_still_taken_as_the_name() -> None:
    result = redact_identity(
        "Janey and Patel were on nights.", name="Jane Smith (Janey, née Patel)", address=None
    )
    assert result == f"{REMOVED} and {REMOVED} were on nights."


def test_a_name_written_with_underscores_still_goes() -> None:
    # An underscore parts words as a dot does: 'priya_patel' is how people write a username.
    result = redact_identity(
        "priya_patel and Priya_Patel were on the rota; _Priya_ too.",
        name="Priya Patel",
        address=None,
    )
    assert (
        result == f"{REMOVED}_{REMOVED} and {REMOVED}_{REMOVED} were on the rota; _{REMOVED}_ too."
    )


def test_a_local_part_written_with_an_underscore_goes_whole() -> None:
    result = redact_identity(
        "priya_patel and PRIYA_PATEL wrote; Patel knows.",
        name=None,
        address="priya_patel@nhs.example",
    )
    assert result == f"{REMOVED} and {REMOVED} wrote; {REMOVED} knows."


def test_a_part_of_a_name_inside_a_longer_word_or_number_is_kept() -> None:
    # 'Ward' is a surname and a word, and goes as a word; not inside 'Wardley' or 'Ward2'.
    result = redact_identity(
        "Wardley and Ward2 wards; the ward, Ward_ley, ward-round.", name="Jane Ward", address=None
    )
    assert result == f"Wardley and Ward2 wards; the {REMOVED}, {REMOVED}_ley, {REMOVED}-round."


@pytest.mark.parametrize(
    "written",
    ["JOSE NUNEZ", "Jose Nunez", "josé núñez", "Jose\u0301 Nu\u0303n\u0303ez", "JOSÉ NÚÑEZ"],
)
def test_a_name_with_accents_goes_however_the_text_writes_them(written: str) -> None:
    result = redact_identity(
        f"I am {written}; Jose and NUNEZ on nights.", name="José Núñez", address=None
    )
    assert result == f"I am {REMOVED}; {REMOVED} and {REMOVED} on nights."


def test_a_name_written_without_accents_catches_the_accented_spelling() -> None:
    # Everything that is not the name is kept as written, accents and all.
    result = redact_identity(
        "José at the café, JOSÉ in the naïve rota, Jose\u0301 again.", name="Jose", address=None
    )
    assert result == f"{REMOVED} at the café, {REMOVED} in the naïve rota, {REMOVED} again."


def test_letters_that_fold_to_more_than_one_letter_keep_the_text_around_them() -> None:
    # 'ﬁ' folds to 'fi' and 'ß' to 'ss': positions in the folded text are not the original's,
    # and the text after them must be cut where the name is, not a few characters off.
    text = "ﬃ Straße ß İstanbul ﬁona wrote to STRAUSS; the Straße ﬁle is Strauß's. ﬁ"
    result = redact_identity(text, name="Fiona Strauß", address=None)
    assert result == (
        f"ﬃ Straße ß İstanbul {REMOVED} wrote to {REMOVED}; the Straße ﬁle is {REMOVED}'s. ﬁ"
    )


def test_letters_that_nfkd_leaves_alone_are_read_plain_too() -> None:
    result = redact_identity(
        "Lukasz, ŁUKASZ and Soren Odegaard; Łódź stays.",
        name="Łukasz Søren Ødegaard",
        address=None,
    )
    assert result == f"{REMOVED}, {REMOVED} and {REMOVED} {REMOVED}; Łódź stays."


@pytest.mark.parametrize("name", ["Siobhan O'Brien", "Siobhan O’Brien", "Siobhan O‘Brien"])
def test_a_name_with_an_apostrophe_goes_whole_whichever_apostrophe_is_written(name: str) -> None:
    result = redact_identity(
        "O'Brien, O’Brien, o`brien and Brien; O'Neill stays.", name=name, address=None
    )
    assert result == f"{REMOVED}, {REMOVED}, {REMOVED} and {REMOVED}; O'Neill stays."


def test_a_name_like_d_souza_goes_whole() -> None:
    result = redact_identity(
        "D’Souza said Souza's rota is fine; ask D'SOUZA.", name="Zoe D'Souza", address=None
    )
    assert result == f"{REMOVED} said {REMOVED}'s rota is fine; ask {REMOVED}."


@pytest.mark.parametrize("name", ["'Jane Smith'", '"Jane Smith"', "‘Jane Smith’", "“Jane Smith”"])
def test_quotes_around_a_display_name_are_not_part_of_it(name: str) -> None:
    result = redact_identity("Jane Smith, Jane and Smith.", name=name, address=None)
    assert result == f"{REMOVED}, {REMOVED} and {REMOVED}."


def test_the_tag_after_a_plus_in_the_address_is_not_the_learners_name() -> None:
    result = redact_identity(
        "From priya+nhs@nhs.net: priya+nhs on the NHS rota; nhs.net; Priya said.",
        name=None,
        address="priya+nhs@nhs.net",
    )
    assert result == f"From {REMOVED}: {REMOVED} on the NHS rota; nhs.net; {REMOVED} said."


def test_the_part_before_a_plus_goes_whole_and_in_pieces() -> None:
    result = redact_identity(
        "priya.patel on the rota; Patel and the rota.",
        name=None,
        address="priya.patel+rota@nhs.example",
    )
    assert result == f"{REMOVED} on the rota; {REMOVED} and the rota."


def test_an_organisation_word_in_the_local_part_is_not_taken_out_alone() -> None:
    result = redact_identity(
        "jane.smith.nhs wrote about the NHS trust; Jane and Smith.",
        name=None,
        address="jane.smith.nhs@nhs.example",
    )
    assert result == f"{REMOVED} wrote about the NHS trust; {REMOVED} and {REMOVED}."


@pytest.mark.parametrize("invisible", ["\u00ad", "\u200d", "\u200c", "\u2060", "\ufeff", "\u200e"])
def test_an_invisible_character_inside_a_name_does_not_hide_it(invisible: str) -> None:
    # A soft hyphen or a joiner is not seen on the screen, so 'Pri\u00adya' reads as 'Priya'.
    # The ones outside the name are kept where they were.
    text = f"Pri{invisible}ya Pa{invisible}tel wrote; {invisible}Priya{invisible} and the rota."
    result = redact_identity(text, name="Priya Patel", address=None)
    assert result == f"{REMOVED} wrote; {invisible}{REMOVED}{invisible} and the rota."


def test_a_zero_width_space_parts_words_as_a_space_does() -> None:
    result = redact_identity(
        "Priya\u200bPatel wrote; the\u200bPriya\u200brota; Priyanka stays.",
        name="Priya Patel",
        address=None,
    )
    assert result == f"{REMOVED} wrote; the\u200b{REMOVED}\u200brota; Priyanka stays."


def test_an_invisible_character_in_the_display_name_is_not_part_of_the_name() -> None:
    # 'Pri' is not taken out alone because a soft hyphen in the display name split the word.
    result = redact_identity(
        "Priya and the Pri clinic; Priya\u200bPatel.", name="Pri\u00adya\u200bPatel", address=None
    )
    assert result == f"{REMOVED} and the Pri clinic; {REMOVED}."


# Symbols whose compatibility form is letters: '™' is 'TM', '№' is 'No', 'Ⓐ' is 'A', a Kangxi
# radical is the ideograph it looks like. Written next to a name they are not part of it.
SYMBOLS_OF_LETTERS = ("™", "℠", "№", "℡", "℅", "₨", "Ⓐ", "ⓩ", "⼈", "⽇", "㎏", "℃", "㏂")


@pytest.mark.parametrize("symbol", SYMBOLS_OF_LETTERS)
def test_a_symbol_written_next_to_a_name_does_not_hide_it(symbol: str) -> None:
    result = redact_identity(
        f"{symbol}Priya{symbol} said; Patel{symbol} and {symbol}PATEL.",
        name="Priya Patel",
        address=None,
    )
    assert result == f"{symbol}{REMOVED}{symbol} said; {REMOVED}{symbol} and {symbol}{REMOVED}."


def test_spaces_and_apostrophes_of_other_widths_still_read_as_spaces_and_apostrophes() -> None:
    # Characters that are no letter fold to what they are (a no-break space to a space, a
    # full-width apostrophe to one), so the full name is still found whole.
    result = redact_identity(
        "Siobhan\u00a0O\uff07Brien and O\uff07BRIEN wrote.", name="Siobhan O'Brien", address=None
    )
    assert result == f"{REMOVED} and {REMOVED} wrote."


def test_a_name_with_an_apostrophe_never_takes_out_the_word_it_spells_without_one() -> None:
    # 'D'Eath' without its apostrophe is 'death': a patient safety concern must keep that word.
    result = redact_identity(
        "Tom D'Eath saw the patient's death go unreported.", name="Tom D'Eath", address=None
    )
    assert result == f"{REMOVED} saw the patient's death go unreported."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JOSE OBRIEN said no teaching.", f"{REMOVED} said no teaching."),
        ("Obrien said so, and OBrien again.", f"{REMOVED} said so, and {REMOVED} again."),
        ("Write to jose.obrien@example.com", f"Write to {REMOVED}.{REMOVED}@example.com"),
        ("Ask obrien_j on the ward", f"Ask {REMOVED}_j on the ward"),
        ("mail obrien.j@gmail.com", f"mail {REMOVED}.j@gmail.com"),
        ("find me at x.com/obrien or @obrien", f"find me at x.com/{REMOVED} or @{REMOVED}"),
        # Next to another part of the name, it is the name, in any case.
        ("kind regards, jose obrien", f"kind regards, {REMOVED} {REMOVED}"),
        # Written in lower case in a sentence, it may be a word: kept.
        ("the obrien rota", "the obrien rota"),
    ],
)
def test_a_name_written_without_its_apostrophe_goes_where_it_is_written_as_a_name(
    text: str, expected: str
) -> None:
    """A confidential learner's surname reached contacts as 'OBRIEN' (an exploratory test)."""
    assert redact_identity(text, name="José O'Brien", address=None) == expected


def test_a_two_letter_name_sent_with_its_accents_apart_takes_out_no_word() -> None:
    # Some mail clients send names decomposed ('Lê' as 'Le' and a combining mark): each part
    # is still two letters, too short to take out alone, and 'I do not feel safe' stays.
    name = unicodedata.normalize("NFD", "Đỗ Lê")
    result = redact_identity("I do not feel safe, le rota says. Đỗ Lê", name=name, address=None)
    assert result == f"I do not feel safe, le rota says. {REMOVED}"


@pytest.mark.parametrize(
    ("name", "text"),
    [("Jo O'B", "O'B said so."), ("นิด สมใจ", "นิด บอกว่า"), ("कुल शर्मा", "कुल ने कहा")],
)
def test_a_part_of_three_letters_goes_however_its_marks_are_counted(name: str, text: str) -> None:
    # An apostrophe counts; a Thai or Hindi vowel sign is part of its letter.
    assert redact_identity(text, name=name, address=None).startswith(REMOVED)


def test_an_accent_with_no_composed_letter_does_not_split_a_name() -> None:
    # 'ọ́' has no single character: split at its mark, 'Fọ́lákẹ́' gave the part 'lákẹ', and
    # 'lake' went from every text the learner wrote.
    result = redact_identity("Fọ́lákẹ́ went to the lake ward.", name="Fọ́lákẹ́ Adé", address=None)
    assert result == f"{REMOVED} went to the lake ward."


def test_a_name_with_a_letter_apostrophe_still_loses_its_parts() -> None:
    # 'ʼ' (U+02BC) is a letter to Unicode, and the apostrophe of Ukrainian names.
    result = redact_identity("Souza was on the ward", name="Sarah DʼSouza", address=None)
    assert result == f"{REMOVED} was on the ward"


def test_an_address_part_is_counted_without_its_accent_marks() -> None:
    # 'dọ́' has no composed form: three characters, but 'do' as compared, and too short.
    result = redact_identity("I do not know, do you?", name="Ade", address="ade.dọ́@example.com")
    assert result == "I do not know, do you?"


def test_an_invisible_character_between_a_letter_and_its_accent_is_no_gap() -> None:
    result = redact_identity("Müller said so", name="Mu\u00ad\u0308ller", address=None)
    assert result == f"{REMOVED} said so"


def test_a_name_between_many_markers_goes_and_the_markers_stay() -> None:
    text = f"{REMOVED} Jane{REMOVED}Name " * 2000
    result = redact_identity(text, name="Jane Name", address=None)
    assert result == f"{REMOVED} {REMOVED}{REMOVED}{REMOVED} " * 2000


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Jürgen Müller", "Juergen Mueller"),
        ("Jürgen Müller", "JUERGEN MUELLER"),
        ("Jürgen Müller", "Jurgen Muller"),
        ("Ju\u0308rgen Mu\u0308ller", "Juergen Mueller"),
        ("Søren Ødegaard", "Soeren Oedegaard"),
        ("SØREN ØDEGAARD", "Soeren Oedegaard"),
        ("Åsa Öberg", "Aasa Oeberg"),
        ("Jordi Col·lell", "Jordi Collell"),
        ("Jordi Coŀlell", "Jordi Collell"),
    ],
)
def test_a_name_goes_in_the_spelling_used_without_its_letters(name: str, written: str) -> None:
    # Typed without an umlaut, 'ü' is written 'ue', 'ø' 'oe', 'å' 'aa'; Catalan 'l·l' is 'll'.
    result = redact_identity(f"{written} wrote.", name=name, address=None)
    assert result == f"{REMOVED} wrote."
    words = written.split()
    result = redact_identity(f"{words[1]} and {words[0]}.", name=name, address=None)
    assert result == f"{REMOVED} and {REMOVED}."


def test_spellings_are_made_only_from_the_names_own_letters() -> None:
    # 'Muller' has no umlaut, so 'Mueller' is another family's name; 'Zoë' is not 'Zoee'.
    result = redact_identity(
        "Mueller, Moeller, Zoee and Zoe wrote.", name="Zoë Muller", address=None
    )
    assert result == f"Mueller, Moeller, Zoee and {REMOVED} wrote."


@pytest.mark.parametrize("other", ["Name", "Removed", "Name Removed", "name.removed@nhs.example"])
def test_several_names_are_taken_out_in_one_pass_without_nesting_markers(other: str) -> None:
    names = ("Priya Patel", other) if "@" not in other else ("Priya Patel",)
    addresses = (other,) if "@" in other else ()
    result = redact_identities(
        "Priya wrote; Patel named the Name on the form.", names=names, addresses=addresses
    )
    assert "[" not in result.replace(REMOVED, "")
    assert result.startswith(f"{REMOVED} wrote; {REMOVED} named the ")


def test_a_marker_already_in_the_text_is_not_taken_out_again() -> None:
    # What one channel took out is taken out again by the next ('for_contacts', then the names
    # the concern and the record keep): a learner called 'Name' must not read '[[name removed]
    # removed]', and neither must the people handling the concern.
    once = redact_identity("Priya wrote.", name="Priya", address=None)
    for name in ("Name", "Removed", "name removed", "Priya"):
        assert redact_identity(once, name=name, address=None) == f"{REMOVED} wrote."


def test_redact_identity_is_redact_identities_with_one_name_and_address() -> None:
    text = "Jane (jane.smith@nhs.example) and Smith; Ward stays."
    assert redact_identity(text, name="Jane Smith", address="jane.smith@nhs.example") == (
        redact_identities(text, names=["Jane Smith"], addresses=["jane.smith@nhs.example"])
    )


@pytest.mark.parametrize("other", ["Name", "Removed", "name removed", "Priya"])
def test_in_confidence_takes_every_name_out_in_one_pass(other: str) -> None:
    result = in_confidence(
        "Priya wrote; the name on the form is Patel.",
        names=("Priya Patel", other, None),
        address="priya.patel@nhs.example",
    )
    assert result.startswith(f"{REMOVED} wrote; the ")
    assert result.endswith(f" on the form is {REMOVED}.")
    assert "[" not in result.replace(REMOVED, "")


def test_characters_that_fold_to_themselves_do_not_fill_the_cache() -> None:
    # A long text in Chinese or Japanese has more distinct characters than the cache holds:
    # if each went through it, every character would push another out and be folded again.
    _fold_character.cache_clear()
    ideographs = "".join(map(chr, range(0x4E00, 0x4E00 + 6000)))
    text = f"{ideographs}。Priya、{ideographs}"
    assert redact_identity(text, name="Priya", address=None) == (
        f"{ideographs}。{REMOVED}、{ideographs}"
    )
    assert _fold_character.cache_info().currsize < 10


@pytest.mark.parametrize(
    ("written", "name", "kept"),
    [
        ("Dear team, I'm Jo, an FY1.", "Jo Bloggs", f"Dear team, I'm {REMOVED}, an FY1."),
        (
            "Wei Ng here. The NG tube was wrong.",
            "Wei Ng",
            f"{REMOVED} here. The NG tube was wrong.",
        ),
        ("Ed was in ED all night.", "Ed Smith", f"{REMOVED} was in ED all night."),
        ("I do not know what to do.", "Do Van Anh", "I do not know what to do."),
        ("jo bloggs wrote this", "Jo Bloggs", f"{REMOVED} wrote this"),
    ],
)
def test_a_part_of_two_letters_goes_where_it_is_written_as_a_name(
    written: str, name: str, kept: str
) -> None:
    """'Jo' and 'Ng' were never taken out (three letters at least), so 'I'm Jo, an FY1'
    reached the supervisor; in lower case or in capitals ('NG tube', 'ED') they are words."""
    assert redact_identity(written, name=name, address=None) == kept
