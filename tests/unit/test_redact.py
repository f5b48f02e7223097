"""Email text that contacts read carries no sign-off, name or address of the learner."""

from __future__ import annotations

import pytest

from intake.redact import REMOVED, drop_signature, for_contacts, redact_identity


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


def test_for_contacts_does_both() -> None:
    text = "I am Sam Jones, a nurse.\nNo mentor for 3 weeks.\n\nThanks\nSam"
    result = for_contacts(text, name="Sam Jones", address="sam.jones@uni.example.ac.uk")
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
