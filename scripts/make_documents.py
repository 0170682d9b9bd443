"""Write the shipped example documents (a fictional clinic's protocols) and the odd files the tests read.

    python scripts/make_documents.py

documents/clinic-protocols/ gets a PDF (several pages, bookmarks, a table), a Word file (headings, a table), an
HTML page, a Markdown file and a plain-text note, and tests/fakeapi/clinic_facts.json the answer key of the
loopback teacher that distills them (benchmarks/bench_document_recipe.py): each fact a sentence of the documents,
the questions it answers and its short answer; tests/fixtures/documents/ gets the files reading must refuse
one line at a time: a PDF with a scanned page (an image, no text layer), an encrypted PDF and a broken one.
Every word is ours and every person and place fictional. The output is deterministic (fixed creation dates,
no random ids), so re-running the script leaves git with nothing to commit. Needs fpdf2, python-docx and pypdf
(`pip install 'distill[documents]' fpdf2`).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import docx
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "documents" / "clinic-protocols"
FIXTURES = ROOT / "tests" / "fixtures" / "documents"
ANSWER_KEY = ROOT / "tests" / "fakeapi" / "clinic_facts.json"
WHEN = datetime(2026, 1, 5, tzinfo=timezone.utc)

# The answer key (tests/fakeapi/clinic_facts.json): each fact is a sentence written into the documents below, the
# questions it answers on its own and its short answer, for the loopback teacher of the measured recipe.
FACTS: list[dict[str, object]] = []


def fact(sentence: str, answer: str, *questions: str) -> str:
    """`sentence`, recorded in the answer key with the questions it answers and its short answer."""
    FACTS.append({"sentence": sentence, "answer": answer, "questions": list(questions)})
    return sentence


def para(*sentences: str) -> str:
    return " ".join(sentences)


# The sentence the tests follow from the PDF's page 3 to the leaf it is about (medication storage).
PLANTED = fact("The vaccine refrigerator log at Harbour Lane is countersigned every Friday by the duty pharmacist, "
               "who initials the lowest and highest reading of the week.",
               "The duty pharmacist countersigns it every Friday.",
               "Who countersigns the vaccine refrigerator log at Harbour Lane, and how often?",
               "How often is the Harbour Lane vaccine fridge log countersigned?")

PDF_PAGES: list[tuple[str, list[str]]] = [
    ("Hand hygiene and infection control", [
        para("Every member of staff cleans their hands before and after each patient contact, after touching a "
             "patient's surroundings, after removing gloves and before any aseptic procedure.",
             fact("Alcohol hand rub is used for at least twenty seconds; soap and water for at least forty seconds "
                  "when hands are visibly soiled or after caring for a patient with diarrhoea.",
                  "Alcohol hand rub for at least twenty seconds; soap and water for at least forty seconds.",
                  "How long should staff at Harbour Lane rub their hands with alcohol hand rub?",
                  "For how long do Harbour Lane staff wash with soap and water when their hands are visibly soiled?",
                  "What hand washing times does Harbour Lane set for hand rub and for soap and water?")),
        para(fact("Nails are kept short and free of varnish.",
                  "Nails are kept short and free of varnish.",
                  "What are the rules on nails for clinical staff at Harbour Lane?",
                  "Can Harbour Lane clinical staff wear nail varnish?"),
             fact("Wrist watches and rings with stones are removed before clinical work begins.",
                  "Wrist watches and rings with stones are removed before clinical work.",
                  "Which jewellery must Harbour Lane staff take off before clinical work?",
                  "May staff at Harbour Lane wear a wrist watch during clinical work?"),
             "Sleeves are rolled above the elbow in clinical rooms."),
        para(fact("Spillages of blood or body fluid are covered with chlorine granules for two minutes, then "
                  "collected with disposable towels into an orange clinical waste bag.",
                  "Cover it with chlorine granules for two minutes, then collect it with disposable towels into "
                  "an orange clinical waste bag.",
                  "How is a blood spillage cleaned up at Harbour Lane?",
                  "How long are chlorine granules left on a body fluid spill at Harbour Lane?"),
             fact("The spill kit lives in the cupboard beside treatment room two.",
                  "In the cupboard beside treatment room two.",
                  "Where is the spill kit kept at Harbour Lane?",
                  "In which cupboard does Harbour Lane keep its spill kit?")),
    ]),
    ("Telephone triage", [
        para(fact("Calls are answered by the reception team, who ask three questions before booking: is the caller "
                  "breathing normally, is there chest pain, and is there sudden weakness of the face or an arm.",
                  "Is the caller breathing normally, is there chest pain, and is there sudden weakness of the face "
                  "or an arm.",
                  "Which three questions does Harbour Lane reception ask a caller before booking?",
                  "What does the Harbour Lane reception team check before booking a call?"),
             "A yes to any of them means the caller is told to ring the emergency number at once."),
        para("All other same-day requests go onto the triage list.",
             fact("The duty nurse calls back within one hour, in the order of the urgency flag set by reception: "
                  "red, then amber, then green.",
                  "The duty nurse calls back within one hour, red first, then amber, then green.",
                  "How soon does the Harbour Lane duty nurse call back a same-day request?",
                  "In what order are triage call-backs made at Harbour Lane?")),
        para(fact("Children under one year old with a fever are always flagged red.",
                  "Children under one year old with a fever are always flagged red.",
                  "How is a call about a baby under one with a fever flagged at Harbour Lane?",
                  "Which callers are always given a red triage flag at Harbour Lane?"),
             "Every triage call is written up in the record with the advice given and the safety-netting words "
             "used."),
    ]),
    ("Medication storage", [
        para(fact("Vaccines and insulin are stored in the two pharmacy refrigerators in the treatment corridor.",
                  "In the two pharmacy refrigerators in the treatment corridor.",
                  "Where are vaccines and insulin stored at Harbour Lane?",
                  "Which refrigerators hold the vaccines at Harbour Lane?"),
             "The refrigerators are never used for food, specimens or drinks, and the doors are kept locked."),
        "The current, lowest and highest temperatures are read and written in the log at the start of "
        "every session. " + PLANTED,
        "TABLE",
        fact("If a reading falls outside the range, the stock is quarantined in the refrigerator, labelled do "
             "not use, and the practice manager is told the same day.",
             "The stock is quarantined in the refrigerator, labelled do not use, and the practice manager is told "
             "the same day.",
             "What happens at Harbour Lane when a vaccine refrigerator reading is outside its range?",
             "Who is told when the Harbour Lane vaccine fridge goes out of range?"),
    ]),
    ("Needlestick injury", [
        para(fact("After a needlestick or a splash of blood into the eyes or mouth, the wound is encouraged to "
                  "bleed gently under running water, washed with soap, and covered.",
                  "Encourage the wound to bleed gently under running water, wash it with soap, and cover it.",
                  "What is the first aid for a needlestick injury at Harbour Lane?",
                  "How is a needlestick wound treated straight away at Harbour Lane?"),
             "Eyes and mouth are rinsed with plenty of water. The wound is never scrubbed or sucked."),
        fact("The injured person tells the duty doctor straight away and goes to the occupational health service "
             "or the emergency department within one hour, taking the details of the source patient if known.",
             "Tell the duty doctor straight away and go to occupational health or the emergency department "
             "within one hour.",
             "Who must a Harbour Lane worker tell after a needlestick injury, and where do they go?",
             "How quickly must someone with a needlestick injury at Harbour Lane reach occupational health?"),
        fact("The incident is recorded on the clinic's incident form before the end of the shift.",
             "On the clinic's incident form, before the end of the shift.",
             "When is a needlestick incident recorded at Harbour Lane?",
             "Where is a needlestick injury written up at Harbour Lane?"),
    ]),
    ("Waste and sharps", [
        para("Sharps bins are assembled with the lid clicked shut on all sides and labelled with the date and "
             "the room.",
             fact("A bin is closed when it is three quarters full and never later than three months after it was "
                  "opened.",
                  "When it is three quarters full, and never later than three months after it was opened.",
                  "When is a sharps bin closed at Harbour Lane?",
                  "How long can a Harbour Lane sharps bin stay open?")),
        fact("Closed bins are kept in the locked clinical waste store until collection on Tuesdays.",
             "In the locked clinical waste store until collection on Tuesdays.",
             "Where are closed sharps bins kept at Harbour Lane?",
             "On which day is clinical waste collected from Harbour Lane?"),
        fact("Orange bags take infectious waste, yellow bins take medicines and tiger-striped bags take "
             "non-infectious dressings and gloves.",
             "Orange bags for infectious waste, yellow bins for medicines, tiger-striped bags for "
             "non-infectious dressings and gloves.",
             "Which waste goes into which bag or bin at Harbour Lane?",
             "At Harbour Lane, where do unused medicines go for disposal?"),
        "Bags are tied with a swan neck and labelled with the clinic's postcode before they leave the room.",
    ]),
    ("Cleaning clinical rooms", [
        para(fact("Couches, trolleys and work surfaces in clinical rooms are wiped with a detergent and chlorine "
                  "wipe between patients and at the end of every session.",
                  "They are wiped with a detergent and chlorine wipe between patients and at the end of every "
                  "session.",
                  "How often are couches and trolleys cleaned in Harbour Lane clinical rooms?",
                  "What is used to wipe work surfaces between patients at Harbour Lane?"),
             "Couch roll is changed for every patient."),
        para(fact("Privacy curtains are disposable and are replaced every six months, or at once when they are "
                  "visibly soiled.",
                  "Every six months, or at once when visibly soiled.",
                  "How often are the privacy curtains replaced at Harbour Lane?",
                  "When does Harbour Lane change a disposable privacy curtain?"),
             "The date of hanging is written on the curtain label."),
        fact("The cleaning contractor follows a colour code: red cloths for toilets, blue for general areas, "
             "green for the kitchen and yellow for clinical rooms.",
             "Red for toilets, blue for general areas, green for the kitchen and yellow for clinical rooms.",
             "What colour of cleaning cloth is used in Harbour Lane clinical rooms?",
             "Which cloth colours does the Harbour Lane cleaning contractor use for each area?"),
        fact("The infection control lead audits the clinical rooms every quarter and reports the scores to the "
             "practice meeting.",
             "The infection control lead audits them every quarter and reports the scores to the practice "
             "meeting.",
             "How often are Harbour Lane clinical rooms audited for infection control?",
             "Who audits the cleanliness of the clinical rooms at Harbour Lane?"),
    ]),
    ("Personal protective equipment", [
        para(fact("Gloves are worn for any contact with blood, body fluids, mucous membranes or broken skin, and "
                  "are changed between patients.",
                  "For any contact with blood, body fluids, mucous membranes or broken skin, changed between "
                  "patients.",
                  "When must Harbour Lane staff wear gloves?",
                  "Do Harbour Lane staff change gloves between patients?"),
             "Hands are cleaned after gloves come off."),
        fact("Disposable plastic aprons are worn for wound dressings, ear irrigation and any procedure that may "
             "splash.",
             "For wound dressings, ear irrigation and any procedure that may splash.",
             "When do Harbour Lane staff wear a disposable apron?",
             "Which procedures at Harbour Lane need a plastic apron?"),
        fact("A fluid-resistant surgical mask and eye protection are worn when a patient with a respiratory "
             "infection is examined closer than one metre.",
             "A fluid-resistant surgical mask and eye protection.",
             "What protection do Harbour Lane staff wear to examine a patient with a respiratory infection up "
             "close?",
             "When is eye protection worn at Harbour Lane?"),
        "Stocks of gloves, aprons and masks are checked by the health care assistant every Monday.",
    ]),
    ("Specimens", [
        para(fact("Every specimen pot is labelled in the room, in front of the patient, with the full name, date "
                  "of birth and the date the sample was taken.",
                  "In the room, in front of the patient, with the full name, date of birth and the date taken.",
                  "How is a specimen pot labelled at Harbour Lane?",
                  "Where must a Harbour Lane specimen be labelled?"),
             "An unlabelled specimen is never sent; it is taken again."),
        fact("Blood samples are ready in the collection box by half past two, when the hospital courier "
             "collects them.",
             "By half past two, when the hospital courier collects them.",
             "What time does the hospital courier collect blood samples from Harbour Lane?",
             "By when must Harbour Lane blood samples be in the collection box?"),
        fact("Urine and stool samples that miss the courier are kept in the specimen refrigerator, never in the "
             "vaccine refrigerators, until the next morning.",
             "In the specimen refrigerator until the next morning, never in the vaccine refrigerators.",
             "Where does Harbour Lane keep a urine sample that missed the courier?",
             "Can specimens go in the Harbour Lane vaccine refrigerator?"),
        "Leaking pots are double bagged and the laboratory is told by phone.",
    ]),
    ("Controlled drugs", [
        para(fact("Controlled drugs are kept in the steel cabinet bolted to the wall of the dispensary, and the "
                  "key is held by the duty doctor.",
                  "In the steel cabinet bolted to the dispensary wall; the duty doctor holds the key.",
                  "Where are controlled drugs kept at Harbour Lane?",
                  "Who holds the key to the Harbour Lane controlled drugs cabinet?"),
             "No other medicine is stored in that cabinet."),
        fact("Every dose taken from the cabinet is written in the controlled drugs register in ink, and the "
             "entry is signed by two members of staff.",
             "In the controlled drugs register, in ink, signed by two members of staff.",
             "How is a controlled drug dose recorded at Harbour Lane?",
             "How many staff sign a controlled drugs register entry at Harbour Lane?"),
        fact("The stock is counted against the register on the first working day of every month.",
             "On the first working day of every month.",
             "When is the controlled drugs stock counted at Harbour Lane?",
             "How often does Harbour Lane check its controlled drugs against the register?"),
        fact("Out-of-date controlled drugs are destroyed only in front of the authorised witness from the area "
             "team.",
             "Only in front of the authorised witness from the area team.",
             "How are expired controlled drugs destroyed at Harbour Lane?",
             "Who must witness the destruction of controlled drugs at Harbour Lane?"),
    ]),
    ("Vaccine deliveries", [
        para(fact("Vaccine deliveries are accepted only by a nurse or the pharmacist, who checks the cool box "
                  "seal and the delivery note before signing.",
                  "Only a nurse or the pharmacist, after checking the cool box seal and the delivery note.",
                  "Who may accept a vaccine delivery at Harbour Lane?",
                  "What is checked before a vaccine delivery is signed for at Harbour Lane?"),
             fact("Deliveries go into the refrigerator within fifteen minutes of arrival, newest stock at the "
                  "back.",
                  "Within fifteen minutes of arrival, with the newest stock at the back.",
                  "How quickly must delivered vaccines go into the refrigerator at Harbour Lane?",
                  "Where is new vaccine stock placed in the Harbour Lane refrigerator?")),
        fact("Stock is rotated so that the vaccine with the earliest expiry date is used first.",
             "The vaccine with the earliest expiry date is used first.",
             "Which vaccines are used first at Harbour Lane?",
             "How is vaccine stock rotated at Harbour Lane?"),
        "Boxes are never packed against the refrigerator walls, so the cold air can move between them.",
    ]),
    ("Consent", [
        para(fact("Verbal consent is enough for an examination or a blood test, and it is written in the record "
                  "in the clinician's own words.",
                  "Verbal consent is enough, written in the record in the clinician's own words.",
                  "What consent is needed for a blood test at Harbour Lane?",
                  "Is written consent needed for an examination at Harbour Lane?"),
             fact("Written consent on the clinic's form is needed for minor surgery, joint injections and the "
                  "fitting of a contraceptive coil.",
                  "For minor surgery, joint injections and the fitting of a contraceptive coil.",
                  "Which procedures need written consent at Harbour Lane?",
                  "Does a joint injection at Harbour Lane need a signed consent form?")),
        fact("A young person under sixteen may consent alone when the clinician judges that they understand "
             "the treatment, and the reasons are written down.",
             "Yes, when the clinician judges that they understand the treatment, and the reasons are written "
             "down.",
             "Can a patient under sixteen consent to treatment alone at Harbour Lane?",
             "When may a young person under sixteen give their own consent at Harbour Lane?"),
        "A patient may withdraw consent at any time, and the procedure stops.",
    ]),
    ("Safeguarding", [
        para(fact("The safeguarding lead at Harbour Lane is Dr Castell, and the deputy is Nurse Duarte.",
                  "Dr Castell, with Nurse Duarte as deputy.",
                  "Who is the safeguarding lead at Harbour Lane?",
                  "Who is the deputy safeguarding lead at Harbour Lane?"),
             fact("Any worry about a child or a vulnerable adult is reported to the safeguarding lead on the same "
                  "day, even when it seems small.",
                  "To the safeguarding lead, on the same day, even when it seems small.",
                  "When should a Harbour Lane worker report a concern about a child?",
                  "Who is told about a worry over a vulnerable adult at Harbour Lane?")),
        fact("When a child is in immediate danger, staff call the police first and the safeguarding lead "
             "afterwards.",
             "Call the police first and the safeguarding lead afterwards.",
             "What does Harbour Lane staff do when a child is in immediate danger?",
             "Who is called first when a child is in danger at Harbour Lane?"),
        fact("Every member of staff completes safeguarding training every three years, and clinicians every year.",
             "Every three years for all staff, and every year for clinicians.",
             "How often do Harbour Lane staff complete safeguarding training?",
             "How often must Harbour Lane clinicians renew their safeguarding training?"),
    ]),
    ("Home visits", [
        para(fact("Requests for a home visit are taken before half past ten in the morning, and the duty doctor "
                  "decides who is visited.",
                  "Before half past ten in the morning; the duty doctor decides.",
                  "By what time must a home visit be requested at Harbour Lane?",
                  "Who decides which patients get a home visit from Harbour Lane?"),
             "Home visits are for patients who are housebound or too ill to travel."),
        fact("The visiting doctor takes the home visit bag, which is checked every Monday by the health care "
             "assistant and sealed with a numbered tag.",
             "Every Monday by the health care assistant, sealed with a numbered tag.",
             "How often is the Harbour Lane home visit bag checked?",
             "Who checks the home visit bag at Harbour Lane?"),
        fact("Before leaving, the visiting clinician writes the address and the expected time of return on the "
             "whiteboard in the office.",
             "The address and the expected time of return, on the office whiteboard.",
             "What does a Harbour Lane clinician write down before leaving for a home visit?",
             "Where does Harbour Lane record where a visiting doctor has gone?"),
    ]),
    ("Resuscitation equipment", [
        para(fact("The resuscitation trolley stands in the corridor outside treatment room one and holds the "
                  "defibrillator, the oxygen cylinder and the airway bag.",
                  "In the corridor outside treatment room one.",
                  "Where is the resuscitation trolley at Harbour Lane?",
                  "What does the Harbour Lane resuscitation trolley hold?"),
             fact("The trolley is checked every Monday morning against its checklist, and the check is signed "
                  "on the sheet taped to its side.",
                  "Every Monday morning against its checklist, signed on the sheet on its side.",
                  "How often is the resuscitation trolley checked at Harbour Lane?",
                  "Where is the Harbour Lane resuscitation trolley check signed?")),
        fact("The oxygen cylinder is replaced when its gauge falls below half full.",
             "When its gauge falls below half full.",
             "When is the oxygen cylinder replaced at Harbour Lane?",
             "At what level is the Harbour Lane oxygen cylinder swapped for a new one?"),
        fact("All staff practise basic life support every year, and the clinicians also practise with the "
             "defibrillator.",
             "Every year; clinicians also practise with the defibrillator.",
             "How often do Harbour Lane staff practise basic life support?",
             "Who practises with the defibrillator at Harbour Lane?"),
    ]),
    ("Checking identity", [
        para(fact("Before any examination, test, injection or prescription, the clinician asks the patient for "
                  "their full name and date of birth and checks them against the record.",
                  "Their full name and date of birth, checked against the record.",
                  "How does a Harbour Lane clinician check a patient's identity?",
                  "What must a patient say before a Harbour Lane injection or test?"),
             "The clinician never reads the name out and asks the patient to agree, because a worried or "
             "hard of hearing patient may say yes to the wrong name."),
        fact("When two patients with the same name are booked on the same day, reception puts a purple alert "
             "on both records.",
             "Reception puts a purple alert on both records.",
             "What does Harbour Lane do when two patients with the same name are booked on one day?",
             "What is a purple alert at Harbour Lane?"),
        para(fact("For a patient who cannot speak for themselves, identity is confirmed with a carer and with "
                  "the photograph held in the record.",
                  "With a carer and with the photograph held in the record.",
                  "How is the identity of a patient who cannot speak confirmed at Harbour Lane?",
                  "Does Harbour Lane keep photographs in patient records?"),
             "Any mistake of identity is reported on the incident form the same day, even when no harm was "
             "done."),
    ]),
]

FRIDGE_TABLE = [
    ("Item", "Range (C)", "Action outside range"),
    ("Vaccines", "2 to 8", "Quarantine, call the manufacturer"),
    ("Insulin (unopened)", "2 to 8", "Quarantine, ask the pharmacist"),
    ("Room stock", "below 25", "Move to the cool store"),
]

WORD: list[tuple[int, str]] = [
    (1, "Staff handbook"),
    (2, "Opening hours"),
    (0, para(fact("The clinic opens from eight in the morning to half past six in the evening on weekdays, and "
                  "from nine until noon on Saturdays.",
                  "Eight in the morning to half past six on weekdays, and nine until noon on Saturdays.",
                  "What are Harbour Lane Family Clinic's opening hours?",
                  "When is Harbour Lane open on Saturdays?"),
             fact("The doors are locked fifteen minutes after the last booked patient.",
                  "Fifteen minutes after the last booked patient.",
                  "When are the Harbour Lane doors locked at the end of the day?",
                  "How long after the last booked patient does Harbour Lane lock its doors?"),
             "The phone lines open at eight as well, and the first half hour is kept for urgent calls; routine "
             "bookings are taken from half past eight. On bank holidays the clinic is closed and the phone line "
             "is diverted to the regional out-of-hours service.")),
    (2, "Chaperones"),
    (0, para(fact("Every patient is offered a chaperone for an intimate examination.",
                  "Every patient is offered a chaperone for an intimate examination.",
                  "Who is offered a chaperone at Harbour Lane?",
                  "Is a chaperone offered for intimate examinations at Harbour Lane?"),
             fact("The offer, and whether it was accepted, is written in the record with the chaperone's name.",
                  "The offer, whether it was accepted, and the chaperone's name are written in the record.",
                  "What is recorded about a chaperone at Harbour Lane?",
                  "How is a chaperone offer documented at Harbour Lane?"))),
    (0, fact("Only clinical staff who have completed chaperone training act as chaperones, and a receptionist "
             "never does.",
             "Only clinical staff who have completed chaperone training; never a receptionist.",
             "Who may act as a chaperone at Harbour Lane?",
             "Can a Harbour Lane receptionist be a chaperone?")),
    (2, "On-call rota"),
    (3, "Weekday cover"),
    (0, fact("One doctor is on call for the whole session and takes the urgent visits and the triage list.",
             "One doctor is on call for the whole session and takes the urgent visits and the triage list.",
             "What does the on-call doctor cover at Harbour Lane on weekdays?",
             "How many doctors are on call in a Harbour Lane weekday session?")),
    (-1, "TABLE"),
    (3, "Weekend cover"),
    (0, fact("At weekends the clinic's phone line is diverted to the regional out-of-hours service after noon.",
             "To the regional out-of-hours service, after noon at weekends.",
             "Where does the Harbour Lane phone line go on Saturday afternoons?",
             "Who answers Harbour Lane's phone at weekends after noon?")),
    (0, fact("Changes to the rota are agreed with the practice manager at least two weeks ahead.",
             "With the practice manager, at least two weeks ahead.",
             "How far ahead must a Harbour Lane rota change be agreed?",
             "Who agrees changes to the on-call rota at Harbour Lane?")),
    (2, "Lone working"),
    (0, para(fact("Staff working alone after hours sign the lone-working sheet at reception and text the duty "
                  "manager when they leave the building.",
                  "Sign the lone-working sheet at reception and text the duty manager when they leave.",
                  "What must Harbour Lane staff do when working alone after hours?",
                  "Whom does a lone worker at Harbour Lane text on leaving the building?"),
             fact("If no text has come an hour after the time given, the duty manager rings the member of staff "
                  "and then the police.",
                  "The duty manager rings the member of staff and then the police.",
                  "What happens at Harbour Lane if a lone worker has not texted an hour after the time given?",
                  "When does the Harbour Lane duty manager call the police about a lone worker?"))),
    (2, "Annual leave"),
    (0, para(fact("Full-time staff have twenty-eight days of annual leave a year, including bank holidays.",
                  "Twenty-eight days a year, including bank holidays.",
                  "How much annual leave do full-time Harbour Lane staff get?",
                  "Are bank holidays part of the annual leave at Harbour Lane?"),
             fact("Leave is requested on the leave form at least four weeks ahead, and no more than two doctors "
                  "are away in the same week.",
                  "At least four weeks ahead on the leave form; no more than two doctors away in the same week.",
                  "How far ahead must Harbour Lane staff request annual leave?",
                  "How many doctors may be on leave in the same week at Harbour Lane?"))),
    (0, fact("Up to five unused days may be carried into the next leave year with the practice manager's "
             "agreement.",
             "Up to five days, with the practice manager's agreement.",
             "How many days of leave can Harbour Lane staff carry over?",
             "Can unused annual leave be carried into the next year at Harbour Lane?")),
    (2, "Sickness absence"),
    (0, para(fact("A member of staff who is ill rings the practice manager before eight in the morning on the "
                  "first day of absence; a text message is not enough.",
                  "Ring the practice manager before eight in the morning on the first day; a text is not enough.",
                  "How do Harbour Lane staff report sickness?",
                  "Can a Harbour Lane worker report sick by text message?"),
             fact("A fit note is needed from the eighth day of sickness.",
                  "From the eighth day of sickness.",
                  "When does a sick Harbour Lane worker need a fit note?",
                  "From which day of sickness does Harbour Lane ask for a fit note?"))),
    (0, fact("After every absence the member of staff has a short return-to-work talk with their line manager.",
             "A short return-to-work talk with their line manager.",
             "What happens when a Harbour Lane worker comes back after sickness?",
             "Who holds the return-to-work talk at Harbour Lane?")),
    (2, "Training and appraisal"),
    (0, para(fact("Every member of staff has an appraisal once a year with their line manager, and agrees a "
                  "personal development plan.",
                  "Once a year with their line manager, agreeing a personal development plan.",
                  "How often are Harbour Lane staff appraised?",
                  "What is agreed at a Harbour Lane appraisal?"),
             fact("Fire safety, information governance and basic life support are refreshed by everyone every "
                  "year.",
                  "Fire safety, information governance and basic life support.",
                  "Which training must every Harbour Lane worker refresh each year?",
                  "How often is fire safety training repeated at Harbour Lane?"))),
    (0, fact("Protected learning time is the second Wednesday afternoon of each month, when the clinic closes "
             "at one o'clock.",
             "The second Wednesday afternoon of each month; the clinic closes at one o'clock.",
             "When is protected learning time at Harbour Lane?",
             "On which afternoon does Harbour Lane close for staff training?")),
    (2, "Uniform and appearance"),
    (0, para(fact("Clinical staff wear the navy tunic and dark trousers provided by the clinic, and reception "
                  "staff wear the pale blue shirt.",
                  "Clinical staff wear the navy tunic and dark trousers; reception staff wear the pale blue shirt.",
                  "What uniform do clinical staff wear at Harbour Lane?",
                  "What do Harbour Lane receptionists wear?"),
             fact("Uniforms are washed at sixty degrees and are not worn on the way to or from work.",
                  "At sixty degrees, and they are not worn on the way to or from work.",
                  "At what temperature are Harbour Lane uniforms washed?",
                  "Can Harbour Lane staff travel to work in uniform?"))),
    (0, "Identity badges are worn at all times in the building."),
    (2, "Confidentiality"),
    (0, para(fact("Patient records are opened only when a member of staff needs them for their work, and every "
                  "opening is logged by the records system.",
                  "Only when staff need them for their work; every opening is logged.",
                  "When may Harbour Lane staff open a patient's record?",
                  "Does the Harbour Lane records system log who opens a record?"),
             fact("Screens are locked whenever a desk is left, even for a minute.",
                  "Whenever a desk is left, even for a minute.",
                  "When must Harbour Lane staff lock their screens?",
                  "Is a screen locked at Harbour Lane when leaving a desk for a minute?"))),
    (0, fact("Nothing about a patient is ever discussed on social media, and a breach is reported to the data "
             "protection officer within one day.",
             "Never on social media; a breach is reported to the data protection officer within one day.",
             "How quickly is a confidentiality breach reported at Harbour Lane?",
             "To whom does Harbour Lane report a breach of patient confidentiality?")),
    (2, "Induction"),
    (0, para(fact("New staff spend their first week shadowing a colleague in the same role before working alone.",
                  "Their first week, shadowing a colleague in the same role.",
                  "How long do new Harbour Lane staff shadow a colleague?",
                  "What happens in a new worker's first week at Harbour Lane?"),
             "They are shown the fire exits, the panic buttons, the resuscitation trolley and the spill kit on "
             "their first morning, and they read this handbook and the clinical protocols before the end of the "
             "week.",
             fact("The induction checklist is signed by the new member of staff and the practice manager at the "
                  "end of the first month.",
                  "By the new member of staff and the practice manager, at the end of the first month.",
                  "Who signs the Harbour Lane induction checklist?",
                  "When is the induction checklist completed at Harbour Lane?"))),
    (2, "Raising a concern"),
    (0, para("Anyone who sees practice that puts patients or colleagues at risk is expected to say so, and "
             "nobody is treated worse for raising a concern honestly.",
             fact("A concern is raised first with the practice manager, or with the senior partner, Dr Aveling, "
                  "when it is about the practice manager.",
                  "With the practice manager, or with the senior partner Dr Aveling when it is about the "
                  "practice manager.",
                  "Who do Harbour Lane staff raise a concern about unsafe practice with?",
                  "Who is the senior partner at Harbour Lane?"),
             fact("Every concern receives a written answer within ten working days.",
                  "A written answer within ten working days.",
                  "How soon is a concern raised by Harbour Lane staff answered?",
                  "Does Harbour Lane answer a staff concern in writing?"))),
    (2, "Health and safety at work"),
    (0, para(fact("Staff who use a computer for most of the day have a workstation check in their first month and "
                  "whenever they move desk.",
                  "In their first month and whenever they move desk.",
                  "When do Harbour Lane staff have a workstation check?",
                  "Who needs a workstation assessment at Harbour Lane?"),
             "Chairs, screens and keyboards are adjusted to fit the person, and a footrest is provided when it "
             "is needed.",
             fact("Accidents and near misses are written in the accident book at reception on the day they happen.",
                  "In the accident book at reception, on the day they happen.",
                  "Where are accidents at work recorded at Harbour Lane?",
                  "When must a near miss be written up at Harbour Lane?"),
             "The practice manager reviews the book every month and reports any pattern to the practice meeting.")),
    (2, "Parking and travel"),
    (0, para(fact("Staff park in the marked bays behind the pharmacy, and the front car park is kept for patients.",
                  "In the marked bays behind the pharmacy; the front car park is for patients.",
                  "Where do Harbour Lane staff park?",
                  "Can staff use the front car park at Harbour Lane?"),
             fact("Mileage for home visits is claimed on the expenses form by the fifth day of the following month.",
                  "On the expenses form, by the fifth day of the following month.",
                  "How do Harbour Lane staff claim mileage for home visits?",
                  "By when must home visit mileage be claimed at Harbour Lane?"),
             "Bicycles are locked to the rack beside the staff entrance, and there is a shower and a drying "
             "cupboard for staff who cycle or walk to work. Staff who share a car to work are given a bay near "
             "the staff entrance.")),
    (2, "Breaks and mobile phones"),
    (0, para(fact("Staff working a full day take an unpaid lunch break of forty-five minutes, away from their desk, "
                  "and the breaks are staggered so that reception is never left empty.",
                  "Forty-five minutes, unpaid, staggered so that reception is never left empty.",
                  "How long is the lunch break at Harbour Lane?",
                  "Why are lunch breaks staggered at Harbour Lane?"),
             "A short tea break in the morning and the afternoon is taken when the clinic is quiet.")),
    (0, para(fact("Personal mobile phones are kept on silent in lockers during clinical sessions and are used only "
                  "in the staff room.",
                  "On silent in lockers during clinical sessions, used only in the staff room.",
                  "Can Harbour Lane staff use their mobile phones during clinics?",
                  "Where may Harbour Lane staff use a personal mobile phone?"),
             "The clinic's own phones are used for work calls, and no photograph of a patient is ever taken on a "
             "personal phone, even with the patient's agreement.")),
    (2, "Pay and pensions"),
    (0, para(fact("Salaries are paid on the twenty-fifth of each month, or on the last working day before it when "
                  "it falls at a weekend.",
                  "On the twenty-fifth of each month, or the last working day before it at a weekend.",
                  "When are Harbour Lane staff paid?",
                  "What happens to Harbour Lane pay day when the twenty-fifth is a Saturday?"),
             "Payslips are sent by email from the payroll bureau, and questions about them go to the practice "
             "manager, who passes them on.",
             fact("Every employee is enrolled in the workplace pension scheme on their first day, and may opt out "
                  "in writing within one month.",
                  "On their first day; they may opt out in writing within one month.",
                  "When are Harbour Lane staff enrolled in the pension scheme?",
                  "How can a Harbour Lane employee opt out of the workplace pension?"))),
]

ROTA = [("Day", "Doctor", "Nurse"), ("Monday", "Dr Aveling", "Nurse Brandt"),
        ("Wednesday", "Dr Castell", "Nurse Duarte"), ("Friday", "Dr Aveling", "Nurse Esposito")]

def html_section(title: str, *blocks: str) -> str:
    return f"<h2>{title}</h2>\n" + "\n".join(blocks) + "\n"


def p(*sentences: str) -> str:
    return "<p>" + para(*sentences) + "</p>"


HTML_SECTIONS = [
    html_section(
        "Before your blood test",
        p(fact("For a fasting blood test, do not eat for ten hours before your appointment.",
               "Do not eat for ten hours before the appointment.",
               "How long must I fast before a fasting blood test at Harbour Lane?",
               "How many hours without food before a Harbour Lane fasting blood test?"),
          fact("You may drink plain water, and you should take your usual medicines unless the clinic has told "
               "you otherwise.",
               "Yes, you may drink plain water and take your usual medicines unless told otherwise.",
               "Can I drink water before a fasting blood test at Harbour Lane?",
               "Should I take my usual medicines before a Harbour Lane fasting blood test?")),
        p(fact("Bring a list of the medicines you take, including anything bought from a pharmacy.",
               "A list of the medicines you take, including anything bought from a pharmacy.",
               "What should I bring to my blood test at Harbour Lane?",
               "Which medicines should I list for my Harbour Lane blood test?"))),
    html_section(
        "Cancelling an appointment",
        p(fact("Please cancel at least twenty-four hours before your appointment, by phone or through the "
               "online booking page, so that another patient can have the slot.",
               "At least twenty-four hours before, by phone or through the online booking page.",
               "How much notice does Harbour Lane want to cancel an appointment?",
               "How do I cancel an appointment at Harbour Lane?")),
        p(fact("Patients who miss three appointments in a year without telling the clinic receive a letter "
               "from the practice manager.",
               "A letter from the practice manager.",
               "What happens if I miss three appointments at Harbour Lane in a year?",
               "Who writes to patients who keep missing appointments at Harbour Lane?"))),
    html_section(
        "Repeat prescriptions",
        "<ul><li>" + fact("Order repeat prescriptions online or with the form at reception.",
                          "Online or with the form at reception.",
                          "How do I order a repeat prescription from Harbour Lane?",
                          "Where can I get the repeat prescription form at Harbour Lane?") + "</li>\n"
        "<li>" + fact("Allow two working days before collecting from your pharmacy.",
                      "Two working days.",
                      "How long does a Harbour Lane repeat prescription take?",
                      "When can I collect my repeat prescription from the pharmacy?") + "</li>\n"
        "<li>" + fact("Repeat prescriptions are not taken over the phone, so that no medicine name is misheard.",
                      "No, so that no medicine name is misheard.",
                      "Can I order a repeat prescription by phone at Harbour Lane?",
                      "Why does Harbour Lane refuse repeat prescription requests by telephone?") + "</li></ul>",
        p(fact("A medication review with a doctor or the pharmacist is booked once a year for every patient on "
               "repeat medicines.",
               "Once a year, with a doctor or the pharmacist.",
               "How often do patients on repeat medicines have a review at Harbour Lane?",
               "Who carries out medication reviews at Harbour Lane?"))),
    html_section(
        "Registering with the clinic",
        p(fact("Anyone living within the clinic's boundary, the area between the river and the ring road, can "
               "register.",
               "Anyone living between the river and the ring road.",
               "Who can register with Harbour Lane Family Clinic?",
               "What is the boundary of the Harbour Lane practice area?"),
          "You do not need proof of address or identity to register."),
        p(fact("Fill in the registration form and the health questionnaire, and book a new patient check with "
               "the health care assistant within six weeks.",
               "Fill in the registration form and health questionnaire, and book a new patient check within "
               "six weeks.",
               "How do I register as a new patient at Harbour Lane?",
               "When should a new Harbour Lane patient have their new patient check?"))),
    html_section(
        "Test results",
        p(fact("Results are usually back within five working days, and the clinic sends a text message when a "
               "doctor has seen them.",
               "Usually within five working days; you get a text when a doctor has seen them.",
               "How long do test results take at Harbour Lane?",
               "How will Harbour Lane tell me my results are ready?"),
          fact("Ring for results after two o'clock in the afternoon, when the morning calls are over.",
               "After two o'clock in the afternoon.",
               "What time should I phone Harbour Lane for my results?",
               "When is the best time to ring Harbour Lane about test results?")),
        p(fact("Results are given only to the patient, or to someone the patient has named in writing.",
               "Only to the patient, or to someone the patient has named in writing.",
               "Can someone else collect my test results from Harbour Lane?",
               "Who may Harbour Lane give a patient's results to?"))),
    html_section(
        "Interpreters",
        p(fact("A telephone interpreter can be arranged for any appointment; tell reception which language you "
               "speak.",
               "Yes, a telephone interpreter can be arranged; tell reception which language you speak.",
               "Can I have an interpreter at my Harbour Lane appointment?",
               "How do I ask Harbour Lane for a telephone interpreter?"),
          fact("Family members are not asked to interpret, and children never are.",
               "No, family members are not asked to interpret, and children never are.",
               "Can my child interpret for me at Harbour Lane?",
               "Does Harbour Lane use family members as interpreters?"),
          "Letters and leaflets can be sent in large print, in easy read or in another language, and a sign "
          "language interpreter can be arranged with seven days' notice.")),
    html_section(
        "Comments and complaints",
        p(fact("Complaints can be made in writing or by speaking to the practice manager, and the clinic "
               "acknowledges them within three working days.",
               "In writing or to the practice manager; acknowledged within three working days.",
               "How do I make a complaint to Harbour Lane Family Clinic?",
               "How quickly does Harbour Lane acknowledge a complaint?"),
          fact("A full reply is sent within twenty working days.",
               "Within twenty working days.",
               "When will Harbour Lane send a full reply to my complaint?",
               "How long does Harbour Lane take to answer a complaint in full?"))),
    html_section(
        "Online services",
        p("You can use the clinic's online services from any computer or phone once reception has checked who "
          "you are.",
          fact("Online services let you book and cancel appointments, order repeat prescriptions and read your "
               "test results and the letters in your record.",
               "Book and cancel appointments, order repeat prescriptions, and read your results and letters.",
               "What can I do with Harbour Lane's online services?",
               "Can I see my test results online at Harbour Lane?"),
          fact("To sign up, bring photo identification to reception and you will be given a registration letter "
               "with your codes.",
               "Bring photo identification to reception for a registration letter with your codes.",
               "How do I sign up for Harbour Lane's online services?",
               "What do I need to register for online access at Harbour Lane?")),
        p("A parent can have online access for a child under eleven. Access for older children is agreed with "
          "the young person. Keep your codes private: anyone who has them can read your record, so tell "
          "reception at once if you think someone else has seen them, and new codes will be issued.")),
    html_section(
        "When the clinic is closed",
        p(fact("When the clinic is closed, ring the national health advice line on 111, or the emergency number "
               "for a life-threatening emergency.",
               "Ring the national health advice line on 111, or the emergency number if it is life-threatening.",
               "Who do I call when Harbour Lane is closed?",
               "What number should I ring for health advice when Harbour Lane is shut?"),
          "The advice line can book you an appointment with the out-of-hours doctor, who sees patients at the "
          "community hospital.",
          fact("The out-of-hours service sends a note of every contact to the clinic the next working morning.",
               "A note of every contact, sent the next working morning.",
               "Does Harbour Lane find out when I see the out-of-hours doctor?",
               "When does the out-of-hours service tell Harbour Lane about my visit?"))),
    html_section(
        "Access to the building",
        p(fact("The clinic is on one floor, with a ramp at the front door, an accessible toilet beside the "
               "waiting room and a hearing loop at reception.",
               "One floor, a ramp at the front door, an accessible toilet and a hearing loop at reception.",
               "Is Harbour Lane Family Clinic accessible for wheelchair users?",
               "Does Harbour Lane reception have a hearing loop?"),
          "Two parking bays by the entrance are kept for blue badge holders.",
          fact("Tell reception if you need a longer appointment or a quiet room to wait in, and it will be noted "
               "on your record for every visit.",
               "Tell reception, and it will be noted on your record for every visit.",
               "How do I ask for a longer appointment or a quiet room at Harbour Lane?",
               "Will Harbour Lane remember that I need a quiet waiting room?"))),
    html_section(
        "Your health record",
        p(fact("You may ask for a copy of your health record at any time, free of charge, and the clinic sends it "
               "within one month.",
               "Yes, free of charge, sent within one month.",
               "How do I get a copy of my health record from Harbour Lane?",
               "How long does Harbour Lane take to send a copy of my records?"),
          "If you think something in your record is wrong, write to the practice manager and the doctor will "
          "look at it with you.",
          fact("The clinic shares your record with the hospital only for your care, unless you have asked it not "
               "to.",
               "Only for your care, unless you have asked it not to.",
               "Does Harbour Lane share my record with the hospital?",
               "Can I stop Harbour Lane sharing my record?"))),
    html_section(
        "Young people",
        p(fact("Young people aged thirteen and over can book their own appointments and see a doctor or nurse "
               "without a parent.",
               "Yes, from thirteen, without a parent.",
               "Can a teenager book their own appointment at Harbour Lane?",
               "From what age can young people see a Harbour Lane doctor on their own?"),
          "What you tell us is kept private, unless we are worried that you or someone else is at serious risk, "
          "and then we would talk to you first about who needs to know.",
          fact("A drop-in session for young people runs on Thursday afternoons from half past three, with no "
               "appointment needed.",
               "On Thursday afternoons from half past three, with no appointment.",
               "When is the young people's drop-in session at Harbour Lane?",
               "Do I need an appointment for the Harbour Lane young people's drop-in?"))),
    html_section(
        "Carers",
        p(fact("If you look after someone, tell reception so that you are added to the carers' register and "
               "offered a yearly health check and the flu vaccine.",
               "Tell reception to join the carers' register, with a yearly health check and the flu vaccine.",
               "How do carers register with Harbour Lane?",
               "What does Harbour Lane offer people on its carers' register?"),
          "With the permission of the person you care for, the clinic can talk to you about their treatment and "
          "send you copies of their appointment letters.",
          "The carers' noticeboard in the waiting room lists local support groups and respite services.")),
    html_section(
        "Zero tolerance",
        p("Our staff have the right to work without being shouted at, threatened or hurt, and most of our "
          "patients treat them with kindness and patience, for which we are grateful.",
          fact("A patient who is violent or threatening towards staff or other patients may be removed from the "
               "clinic's list after a warning letter.",
               "They may be removed from the clinic's list after a warning letter.",
               "What happens to a patient who threatens staff at Harbour Lane?",
               "Can Harbour Lane remove a patient from its list for violence?"),
          "Where a patient is removed, the clinic tells them in writing how to register elsewhere, and urgent "
          "care goes on being given until they do.")),
]

HTML = ("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Patient information - Harbour Lane Family Clinic</title>
<style>body { font-family: sans-serif; }</style><script>var tracking = "not part of the text";</script></head>
<body><nav><a href="/">Home</a> <a href="/contact">Contact</a></nav>
<main>
<h1>Patient information</h1>
""" + "".join(HTML_SECTIONS) + """</main>
<footer>Harbour Lane Family Clinic is a fictional clinic.</footer>
</body></html>
""")


def md_section(title: str, *paragraphs: str) -> str:
    return f"## {title}\n\n" + "\n\n".join(paragraphs) + "\n\n"


MARKDOWN = "# Emergency procedures\n\n" + "".join([
    md_section(
        "Anaphylaxis",
        para(fact("Anaphylaxis is treated with intramuscular adrenaline into the outer thigh: 500 micrograms for "
                  "adults and children over twelve.",
                  "Intramuscular adrenaline into the outer thigh, 500 micrograms for adults and children over "
                  "twelve.",
                  "How is anaphylaxis treated at Harbour Lane?",
                  "What dose of adrenaline does Harbour Lane give an adult with anaphylaxis?"),
             fact("The dose is repeated after five minutes if there is no improvement.",
                  "After five minutes if there is no improvement.",
                  "When is the adrenaline dose repeated for anaphylaxis at Harbour Lane?",
                  "How long does Harbour Lane wait before a second adrenaline dose?")),
        para("Call the emergency number, lay the patient flat with the legs raised, or sitting up if breathing is "
             "hard.",
             fact("The anaphylaxis box is kept on the top shelf of the resuscitation trolley.",
                  "On the top shelf of the resuscitation trolley.",
                  "Where is the anaphylaxis box kept at Harbour Lane?",
                  "On which shelf does Harbour Lane keep the anaphylaxis box?")),
        fact("Every patient is watched for thirty minutes after a vaccination before leaving the building.",
             "For thirty minutes after a vaccination.",
             "How long are patients watched after a vaccination at Harbour Lane?",
             "Can I leave Harbour Lane straight after my vaccination?")),
    md_section(
        "Fire evacuation",
        para(fact("On hearing the continuous alarm, staff lead patients out through the nearest exit to the "
                  "assembly point in the car park beside the pharmacy.",
                  "In the car park beside the pharmacy, through the nearest exit.",
                  "Where is the fire assembly point at Harbour Lane?",
                  "Where do Harbour Lane staff take patients when the fire alarm sounds?"),
             fact("Nobody uses the lift.",
                  "Nobody uses the lift.",
                  "Can the lift be used during a fire evacuation at Harbour Lane?",
                  "Is the lift used when Harbour Lane is evacuated?")),
        "| Role | Task |\n|---|---|\n| Receptionist | Takes the day list and the visitors' book |\n"
        "| Duty nurse | Checks the treatment rooms and toilets |\n| Duty doctor | Reports to the fire service on "
        "arrival |",
        fact("The fire alarm is tested every Thursday at nine in the morning with a short ring.",
             "Every Thursday at nine in the morning.",
             "When is the fire alarm tested at Harbour Lane?",
             "On which day does Harbour Lane test its fire alarm?")),
    md_section(
        "Power cut",
        fact("If the power fails for more than thirty minutes, the vaccine refrigerators stay closed and their\n"
             "temperatures are read every hour with the battery thermometer.",
             "They stay closed, and their temperatures are read every hour with the battery thermometer.",
             "What happens to the Harbour Lane vaccine refrigerators in a long power cut?",
             "How are fridge temperatures checked at Harbour Lane when the power fails?")),
    md_section(
        "Collapse and cardiac arrest",
        para(fact("When someone collapses and is not breathing normally, the first person there shouts for help, "
                  "presses the red alarm button and starts chest compressions.",
                  "Shout for help, press the red alarm button and start chest compressions.",
                  "What is the first thing to do when someone collapses and stops breathing at Harbour Lane?",
                  "What do Harbour Lane staff do first for a cardiac arrest?"),
             fact("The second person brings the resuscitation trolley and the defibrillator, and reception calls "
                  "the emergency number.",
                  "The second person brings the trolley and defibrillator, and reception calls the emergency "
                  "number.",
                  "Who calls the emergency number during a cardiac arrest at Harbour Lane?",
                  "Who fetches the defibrillator in a Harbour Lane emergency?")),
        para(fact("Compressions go on at thirty to two breaths until the ambulance crew takes over.",
                  "Thirty compressions to two breaths, until the ambulance crew takes over.",
                  "What ratio of compressions to breaths does Harbour Lane use in resuscitation?",
                  "How long do Harbour Lane staff keep up chest compressions?"),
             "A debrief is held the same day for everyone who took part.")),
    md_section(
        "Fainting",
        para(fact("A patient who faints is laid flat with the legs raised and is not given anything to drink "
                  "until fully awake.",
                  "Lay them flat with the legs raised and give nothing to drink until fully awake.",
                  "What should Harbour Lane staff do when a patient faints?",
                  "Can a patient who fainted at Harbour Lane have a drink straight away?"),
             fact("The blood sugar is checked with the meter from treatment room two.",
                  "With the meter from treatment room two.",
                  "Where is the blood sugar meter for a fainting patient at Harbour Lane?",
                  "Which meter is used to check a fainted patient's blood sugar at Harbour Lane?"),
             "A patient who fainted is not allowed to drive home, and is seen by a doctor before leaving, who "
             "checks the pulse, the blood pressure lying and standing, and whether the patient hurt themselves "
             "in the fall.")),
    md_section(
        "Seizures",
        para(fact("During a seizure, staff time it, move hard objects away and cushion the head, and never put "
                  "anything in the mouth.",
                  "Time it, move hard objects away, cushion the head, and never put anything in the mouth.",
                  "What do Harbour Lane staff do during a patient's seizure?",
                  "Should anything be put in the mouth of someone having a seizure at Harbour Lane?"),
             fact("The emergency number is called if a seizure lasts longer than five minutes or a second one "
                  "follows.",
                  "If it lasts longer than five minutes or a second one follows.",
                  "When does Harbour Lane call an ambulance for a seizure?",
                  "How long can a seizure last before Harbour Lane calls the emergency number?"))),
    md_section(
        "Violent or aggressive behaviour",
        para(fact("Staff facing a violent or threatening person press the panic button under the desk, which "
                  "sounds in every room.",
                  "Press the panic button under the desk, which sounds in every room.",
                  "What should Harbour Lane staff do when a patient becomes violent?",
                  "Where is the panic button at Harbour Lane reception?"),
             fact("Two colleagues answer every panic alarm, and the duty manager calls the police when anyone "
                  "is at risk.",
                  "Two colleagues answer it, and the duty manager calls the police when anyone is at risk.",
                  "Who answers a panic alarm at Harbour Lane?",
                  "When does the Harbour Lane duty manager call the police about an aggressive patient?")),
        fact("Every incident is written on the incident form, and a warning letter may follow.",
             "On the incident form; a warning letter may follow.",
             "How is an aggressive incident recorded at Harbour Lane?",
             "What may follow an aggressive incident at Harbour Lane?")),
    md_section(
        "Gas leak or flood",
        para(fact("If anyone smells gas, nobody switches lights or equipment on or off, the windows are opened and "
                  "the building is cleared as for a fire, without sounding the alarm.",
                  "Leave switches alone, open the windows and clear the building as for a fire, without "
                  "sounding the alarm.",
                  "What do Harbour Lane staff do if they smell gas?",
                  "Is the fire alarm sounded for a gas leak at Harbour Lane?"),
             fact("The gas emergency line is rung from outside the building, and the gas tap beside the boiler "
                  "cupboard is turned off only if it is safe.",
                  "Ring the gas emergency line from outside, and turn off the gas tap by the boiler cupboard if "
                  "it is safe.",
                  "Where is the gas tap at Harbour Lane?",
                  "Where should the gas emergency line be called from at Harbour Lane?")),
        para("For a flood, the electricity is switched off at the main board in the cleaner's store if the water "
             "is near sockets, and patients are moved out of the affected rooms.",
             fact("The practice manager holds the list of contractors for the building and rings the landlord "
                  "the same day.",
                  "The practice manager, who rings the landlord the same day.",
                  "Who contacts the landlord after a flood at Harbour Lane?",
                  "Who holds the building contractors list at Harbour Lane?"))),
    md_section(
        "Suspicious package",
        para(fact("A suspicious package is not touched or moved; the area is cleared and the police are called "
                  "from a phone at least fifteen metres away.",
                  "Do not touch it, clear the area and call the police from at least fifteen metres away.",
                  "What should Harbour Lane staff do about a suspicious package?",
                  "How far away should the police be called from for a suspicious package at Harbour Lane?"),
             "Mobile phones and radios are not used close to the package.",
             "The person who found it stays nearby, at a safe distance, to tell the police what they saw.")),
    md_section(
        "Missing child",
        para(fact("If a child goes missing in the building, reception locks the front door at once and every "
                  "room, toilet and cupboard is searched.",
                  "Reception locks the front door and every room, toilet and cupboard is searched.",
                  "What happens if a child goes missing at Harbour Lane?",
                  "Who locks the front door when a child is missing at Harbour Lane?"),
             fact("If the child is not found within ten minutes, the police are called.",
                  "If the child is not found within ten minutes.",
                  "When does Harbour Lane call the police about a missing child?",
                  "How long do Harbour Lane staff search for a missing child before calling the police?"),
             "A member of staff stays with the parent or carer throughout.")),
    md_section(
        "Chemical splash",
        para(fact("A splash of cleaning chemical in the eye is rinsed with the eyewash bottles from the first aid "
                  "box for at least ten minutes.",
                  "With the eyewash bottles from the first aid box, for at least ten minutes.",
                  "How is a chemical splash in the eye rinsed at Harbour Lane?",
                  "How long should an eye be rinsed after a chemical splash at Harbour Lane?"),
             fact("The product's safety data sheet, kept in the blue folder in the cleaner's store, goes to "
                  "hospital with the injured person.",
                  "The safety data sheet from the blue folder in the cleaner's store.",
                  "What goes to hospital with someone who had a chemical splash at Harbour Lane?",
                  "Where are the chemical safety data sheets kept at Harbour Lane?"))),
    md_section(
        "Someone stuck in the lift",
        para(fact("If someone is trapped in the lift, staff talk to them through the door, press the lift alarm "
                  "and ring the lift company's number on the plate beside the lift.",
                  "Talk to them through the door, press the lift alarm and ring the lift company's number on "
                  "the plate beside the lift.",
                  "What do Harbour Lane staff do when someone is stuck in the lift?",
                  "Where is the lift company's phone number at Harbour Lane?"),
             "Staff never try to open the doors or free the person themselves.",
             fact("The fire service is called if the person is unwell or the engineer cannot come within one "
                  "hour.",
                  "If the person is unwell or the engineer cannot come within one hour.",
                  "When does Harbour Lane call the fire service for someone stuck in the lift?",
                  "How long will Harbour Lane wait for the lift engineer before calling the fire service?"))),
    md_section(
        "After an emergency",
        para(fact("After every emergency the duty manager writes an incident report within two days and restocks "
                  "anything used from the trolley, the anaphylaxis box or the first aid box.",
                  "The duty manager writes an incident report within two days and restocks what was used.",
                  "Who writes the incident report after an emergency at Harbour Lane?",
                  "How soon is an emergency written up at Harbour Lane?"),
             "Staff who were shaken by an emergency may talk to the practice manager or the staff support "
             "service in confidence, and time off can be arranged.")),
    md_section(
        "Emergency drills",
        para(fact("A fire drill is held twice a year, once in the morning and once in the afternoon session, so "
                  "that every member of staff takes part at least once.",
                  "Twice a year, once in a morning and once in an afternoon session.",
                  "How often are fire drills held at Harbour Lane?",
                  "Why does Harbour Lane hold fire drills in both morning and afternoon sessions?"),
             "The time taken to clear the building is written in the fire log with anything that went wrong.",
             fact("A practice emergency, such as a collapse in the waiting room, is rehearsed at the staff meeting "
                  "every three months.",
                  "Every three months, at the staff meeting.",
                  "How often does Harbour Lane rehearse a medical emergency?",
                  "Where are emergency rehearsals held at Harbour Lane?"))),
]).rstrip("\n") + "\n"

# What the loopback teacher knows beyond the documents: questions for the leaf no document is about
# (medicines/travel-vaccination), answered from its "own knowledge", as a real teacher would.
KNOWLEDGE = [
    {"sentence": None, "answer": "Book at least six to eight weeks before you travel, as some courses need "
                                 "several doses.",
     "questions": ["How long before a trip should I book my travel vaccines at Harbour Lane?",
                   "When should travel vaccinations be arranged before a journey?"]},
    {"sentence": None, "answer": "Bring your travel dates, the countries you will visit and your vaccination "
                                 "record.",
     "questions": ["What should I bring to a travel vaccination appointment?",
                   "Which details does the nurse need for a travel vaccine consultation?"]},
]

TEXT = """Harbour Lane Family Clinic: visitors

Visitors sign in at reception and wear a visitor badge while in the building.

Contractors are accompanied in clinical areas at all times.
"""


def write_pdf(path: Path, pages: list[tuple[str, list[str]]], *, scanned_after: int | None = None) -> None:
    """One page a section, each with a bookmark (the PDF's outline is its headings); `scanned_after`: a page
    holding only an image, as a scanner makes it, after that page."""
    pdf = FPDF()
    pdf.set_creation_date(WHEN)
    pdf.set_title("Clinical protocols - Harbour Lane Family Clinic")
    pdf.set_author("Harbour Lane Family Clinic (fictional)")
    for number, (title, paragraphs) in enumerate(pages, start=1):
        pdf.add_page()
        pdf.start_section(title, level=0)
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, title)
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            if paragraph == "TABLE":
                with pdf.table(col_widths=(50, 40, 90)) as table:
                    for row in FRIDGE_TABLE:
                        cells = table.row()
                        for cell in row:
                            cells.cell(cell)
            else:
                pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
        if number == scanned_after:
            pdf.add_page()
            pdf.image(_scan(), x=10, y=10, w=190)
    pdf.output(str(path))


def _scan() -> Image.Image:
    """A grey page with dark bars, the look of a scan: pixels only, no text."""
    image = Image.new("L", (400, 560), 235)
    for row in range(40, 520, 30):
        image.paste(60, (30, row, 370 - (row * 7) % 90, row + 8))
    return image


def write_docx(path: Path) -> None:
    document = docx.Document()
    document.core_properties.created = WHEN.replace(tzinfo=None)
    document.core_properties.modified = WHEN.replace(tzinfo=None)
    document.core_properties.author = "Harbour Lane Family Clinic (fictional)"
    for level, text in WORD:
        if level > 0:
            document.add_heading(text, level=level)
        elif level == 0:
            document.add_paragraph(text)
        else:
            table = document.add_table(rows=len(ROTA), cols=len(ROTA[0]))
            for r, row in enumerate(ROTA):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with every member's time fixed: python-docx stamps the time of saving, so git would see a
    new file on every run."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            info.date_time = (2026, 1, 5, 0, 0, 0)
            target.writestr(info, source.read(info.filename))
    return out.getvalue()


def write_encrypted(source: Path, path: Path) -> None:
    """`source` behind a user password (RC4, which pypdf writes without the cryptography package)."""
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="harbour", owner_password="lane", algorithm="RC4-128")
    writer._ID = None  # noqa: SLF001 - a random file id would change the file on every run
    with path.open("wb") as out:
        writer.write(out)


def main() -> None:
    SHIPPED.mkdir(parents=True, exist_ok=True)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    write_pdf(SHIPPED / "protocols.pdf", PDF_PAGES)
    write_docx(SHIPPED / "staff-handbook.docx")
    (SHIPPED / "patient-information.html").write_text(HTML, encoding="utf-8")
    (SHIPPED / "emergency-procedures.md").write_text(MARKDOWN, encoding="utf-8")
    (SHIPPED / "visitors.txt").write_text(TEXT, encoding="utf-8")
    answer_key = {"documents": "documents/clinic-protocols", "facts": FACTS + KNOWLEDGE}
    ANSWER_KEY.write_text(json.dumps(answer_key, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_pdf(FIXTURES / "scanned.pdf", PDF_PAGES[:2], scanned_after=1)
    write_encrypted(FIXTURES / "scanned.pdf", FIXTURES / "encrypted.pdf")
    whole = (SHIPPED / "protocols.pdf").read_bytes()
    (FIXTURES / "broken.pdf").write_bytes(whole[: len(whole) // 3])  # a download cut short
    (FIXTURES / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip archive")
    for path in sorted([*SHIPPED.iterdir(), *FIXTURES.iterdir()]):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
