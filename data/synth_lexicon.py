"""Phrase banks for the built-in corpus: industries, caller phrasing, ad references, robocall scripts.

Plain data only; :mod:`data.synth` owns the grammar that combines these parts and the label rules.
Conventions the grammar relies on:

* Phrases start in lower case unless they start with a proper noun or "I": the generator
  capitalises the first letter of each sentence after it has inserted fillers.
* Phrases carry no sentence-final punctuation (the generator adds it).
* Slots in braces (``{town}``, ``{street}``, ``{day}``, ``{price}``, ``{n}``...) are filled by the
  generator with random values; ``{first}``/``{last}`` are the caller's own name, ``{name}`` and
  ``{surname}`` somebody else's.
* A caller phrase listed under a signal bank always meets that signal's definition in
  :mod:`models.labels`; caller phrases outside signal banks never do (no "today" or "can I get a
  quote" in neutral context; "I was quoted $400" in a billing complaint asks for nothing), so
  signal labels stay exact. Agent lines and robocall/vendor scripts may use such words freely.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    """Something a caller can buy from a business in one industry.

    Attributes:
        names: Noun phrases naming it ("a 50 gallon water heater"); each is a specific_need span.
        price: Typical price range in dollars (low, high).
        unit: Price unit appended when a price is said ("a month"), "" for one-off prices.
    """

    names: tuple[str, ...]
    price: tuple[int, int]
    unit: str = ""


@dataclass(frozen=True)
class Industry:
    """Vocabulary of one industry.

    Attributes:
        name: Machine name written to the ``industry`` column.
        businesses: Business names the agent answers with.
        products: What a new (or existing) customer can buy.
        addons: Upgrades an existing customer may buy (noun phrases, specific_need spans).
        deals: Advertised offers ("the 79 dollar tune-up special"), specific_need spans.
        visits: Verb phrases that book a visit ("have someone come out"); appointment spans
            when preceded by a request frame.
        owned: References to something the caller already got from this business
            ("the AC you guys put in last summer"); existing_customer spans.
        account_refs: "my policy", "my account"...; existing_customer spans.
        bookings: Existing bookings a caller may move or cancel ("my cleaning").
        problems: What is wrong with an owned thing (predicate: "is leaking again").
        new_problems: A fresh problem the business could be hired for ("my AC stopped
            working"); specific_need spans.
        status_items: Things a customer checks on ("my claim"); existing_customer spans.
        account_tasks: Account changes, each with one ``{acct}`` slot for an account reference.
        info: Industry-specific general questions (no purchase step).
        campaigns: Campaign names for tracked ad sources.
        staff: Who would come out or take the call ("a tech", "the dentist").
        faults: Problem statements about a thing ("my AC stopped working"); specific_need spans.
            A new job (buying) when the business did not sell the thing, service when the caller
            adds that it did ("you guys put it in last year").
        fixes_for_anyone: Whether the business takes new repair jobs (faults can be buying).
        policies: General questions beyond hours and location, with no purchase step: rates and
            fees as policy, policies (returns, cancellation, warranty), "do you accept X",
            eligibility ("do I qualify"), service area ("do you come out to {town}").
            Informational; none asks what a concrete job would cost, so none is a price_inquiry.
        terms: An existing customer's general question about the terms of what they have ("what's
            the interest rate on [my savings account]"): informational, the bracketed words an
            existing_customer span. Their own balance, status or bill would be service.
    """

    name: str
    businesses: tuple[str, ...]
    products: tuple[Product, ...]
    addons: tuple[str, ...]
    deals: tuple[str, ...]
    visits: tuple[str, ...]
    owned: tuple[str, ...]
    account_refs: tuple[str, ...]
    bookings: tuple[str, ...]
    problems: tuple[str, ...]
    new_problems: tuple[str, ...]
    status_items: tuple[str, ...]
    account_tasks: tuple[str, ...]
    info: tuple[str, ...]
    campaigns: tuple[str, ...]
    staff: tuple[str, ...]
    faults: tuple[str, ...] = ()
    fixes_for_anyone: bool = False
    policies: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()


INDUSTRIES: tuple[Industry, ...] = (
    Industry(
        name="home_services",
        businesses=("Comfort Air Heating and Cooling", "Blue Line Plumbing", "Reliable Home Services",
                    "Apex Electric", "Summit Roofing", "All Seasons HVAC", "Rooter Pros"),
        products=(
            Product(("a new AC unit", "a new air conditioner", "a three ton AC system", "central air",
                     "a new heat pump"), (3800, 9500)),
            Product(("a water heater", "a new water heater", "a 50 gallon water heater",
                     "a tankless water heater", "a 40 gallon gas water heater"), (900, 4500)),
            Product(("a new furnace", "a furnace replacement", "a high efficiency furnace"), (2500, 7000)),
            Product(("a drain cleaning", "clearing a kitchen drain", "snaking a main sewer line",
                     "a camera inspection of my sewer line"), (150, 600)),
            Product(("a panel upgrade", "a 200 amp panel", "new outlets in my garage",
                     "a whole house generator"), (400, 12000)),
            Product(("a roof replacement", "a new roof", "a few shingles replaced", "new gutters"),
                    (600, 24000)),
            Product(("a furnace tune-up", "an AC tune-up", "a maintenance visit for my AC"), (79, 199)),
            Product(("a sump pump", "a ductless mini split", "a new toilet install",
                     "a whole house water filter"), (350, 6000)),
        ),
        addons=("the annual maintenance plan", "a smart thermostat", "a whole home surge protector",
                "an extended warranty on the unit", "a UV light for the ductwork", "a second zone upstairs"),
        deals=("the 79 dollar tune-up special", "the 500 dollars off a new AC system",
               "the free second opinion", "the zero percent financing on new units",
               "the 49 dollar drain cleaning"),
        visits=("have someone come out", "get a tech out here", "have somebody take a look at it",
                "schedule a service call", "get somebody out to the house",
                "set up a time for someone to come by"),
        owned=("the AC you guys put in last summer", "the water heater you installed",
               "the furnace you replaced in March", "the roof you guys did",
               "the panel your electrician put in",
               "the repair your tech did last week"),
        account_refs=("my account", "my service agreement", "my maintenance plan", "my invoice"),
        bookings=("my service call", "my appointment", "the install", "the tune-up"),
        problems=("is blowing warm air again", "is making that banging noise again",
                  "is leaking from the bottom",
                  "keeps tripping the breaker", "still isn't working right", "stopped working two days later",
                  "is dripping water onto the floor"),
        new_problems=("my AC stopped working", "my water heater is leaking", "the furnace won't turn on",
                      "my kitchen sink is backed up", "half the outlets in my house went dead",
                      "there's water coming through the ceiling", "my toilet keeps running",
                      "the heat went out"),
        status_items=("my install", "the permit", "the part you ordered for me", "my invoice",
                      "the warranty claim on my unit"),
        account_tasks=("update the card on {acct}", "cancel {acct}", "change the address on {acct}",
                       "get a copy of {acct}"),
        info=("do you guys service {town}", "are you licensed and insured", "do you work on weekends",
              "what brands do you carry", "do you do commercial work", "how long have you been in business",
              "do you do free estimates"),
        campaigns=("spring-hvac", "water-heater-promo", "fall-furnace-tuneup", "roof-storm-2024",
                   "lsa-plumbing"),
        staff=("a tech", "a technician", "a plumber", "an electrician", "somebody"),
        faults=("my AC stopped working", "my water heater is leaking", "the furnace won't turn on",
                "my kitchen sink is backed up", "the breaker keeps tripping", "my AC is blowing warm air",
                "the toilet keeps running", "there's no hot water", "my garbage disposal is jammed",
                "the roof is leaking over the garage"),
        fixes_for_anyone=True,
        terms=(
            "what does [my maintenance plan] cover",
            "is [my service agreement] transferable if I sell the house",
            "how many tune-ups do I get with [my maintenance plan]",
            "does [the warranty on my unit] cover labor",
        ),
        policies=(
                  "do you charge for estimates",
                  "is there a trip charge",
                  "what's your warranty on installs",
                  "do you come out to {town}",
                  "is {town} in your service area",
                  "do you charge extra on weekends",
                  "do you charge extra for after hours calls",
                  "do you offer a senior discount",
                  "what's your policy if a part fails",
                  "do you take credit cards over the phone",
                  "are your estimates free",
                  "what's your labor warranty",
        ),
    ),
    Industry(
        name="insurance",
        businesses=("Keystone Insurance Agency", "Harbor Mutual", "Shield Auto and Home Insurance",
                    "Northside Insurance Group", "Liberty Lane Insurance"),
        products=(
            Product(("auto insurance", "car insurance", "insurance for my daughter's car",
                     "a policy for a new truck",
                     "full coverage on my car"), (80, 260), "a month"),
            Product(("homeowners insurance", "a home policy", "insurance on the house we're buying"),
                    (90, 260), "a month"),
            Product(("renters insurance", "a renters policy"), (12, 30), "a month"),
            Product(("life insurance", "a term life policy", "a 20 year term policy"), (20, 95), "a month"),
            Product(("an umbrella policy", "business insurance for my bakery",
                     "coverage for my landscaping business",
                     "motorcycle insurance"), (150, 1800), "a year"),
        ),
        addons=("roadside assistance", "my son as a driver", "flood coverage", "rental car coverage",
                "a second car on the policy", "an umbrella policy on top of my auto"),
        deals=("the bundle discount for home and auto", "the safe driver discount", "the free policy review"),
        visits=("set up a time to go over options", "meet with an agent", "sit down with someone",
                "come into the office", "schedule a call with an agent"),
        owned=("my auto policy with you guys", "the home policy I have with you",
               "the policy I got from you last year",
               "my renters policy"),
        account_refs=("my policy", "my account", "my policy number", "my auto policy", "my premium"),
        bookings=("my appointment with the agent", "my call with the adjuster", "my appointment"),
        problems=("went up by a lot at renewal", "still shows my old car", "has the wrong address on it",
                  "is missing my new car"),
        new_problems=("we just bought a house and need coverage", "I just got my license",
                      "my policy with another company is expiring", "we're adding a teenage driver"),
        status_items=("my claim", "the adjuster visit", "my refund check", "the claim on my car",
                      "my proof of insurance"),
        account_tasks=("take a car off {acct}", "change the address on {acct}", "cancel {acct}",
                       "add my new car to {acct}", "update the payment on {acct}"),
        info=("do you write policies in {state}", "which companies do you work with",
              "are you open on Saturdays", "do you do business insurance", "are you an independent agency",
              "do you have an office in {town}"),
        campaigns=("auto-switch-q2", "bundle-home-auto", "life-awareness-month", "teen-driver-promo"),
        staff=("an agent", "someone", "an adjuster"),
        faults=("my rate went up", "I got a letter saying my coverage is changing",
                "I was in a fender bender"),
        fixes_for_anyone=False,
        terms=(
            "does [my policy] cover flood damage",
            "does [my auto policy] cover rental cars",
            "is roadside assistance included in [my policy]",
            "does [my policy] cover other drivers",
            "does [my home policy] cover mold",
        ),
        policies=(
                  "is there a fee to cancel a policy",
                  "what discounts do you offer",
                  "do I qualify for the safe driver discount",
                  "do you insure drivers with a ticket on their record",
                  "is there a grace period on payments",
                  "what's your cancellation policy",
                  "do you cover rideshare drivers",
                  "do you accept payments by card",
                  "who qualifies for the multi car discount",
                  "do you write policies for people in {town}",
                  "is there a fee for paying monthly",
                  "do you charge for a policy review",
        ),
    ),
    Industry(
        name="automotive",
        businesses=("Riverside Honda", "Main Street Auto Repair", "Valley Ford", "Precision Auto Care",
                    "Westgate Toyota", "Quick Lane Tire and Auto"),
        products=(
            Product(("a used SUV", "the 2021 RAV4 on your lot", "a new F-150", "a certified pre-owned Civic",
                     "the silver Camry on your website", "a minivan for my family"), (17000, 52000)),
            Product(("a brake job", "new brake pads", "front brakes and rotors"), (180, 650)),
            Product(("an oil change", "a synthetic oil change"), (39, 99)),
            Product(("four new tires", "a set of all season tires", "a tire rotation and alignment"), (90,
                                                                                                       1100)),
            Product(("a diagnostic on my check engine light", "a timing belt replacement", "a new battery",
                     "a transmission flush", "a state inspection"), (35, 1000)),
        ),
        addons=("an extended warranty", "the ceramic coating", "remote start", "a tire protection plan",
                "the prepaid maintenance package"),
        deals=("the 29 dollar oil change", "the zero percent APR offer",
               "the buy three tires get one free deal",
               "the 500 dollar trade-in bonus"),
        visits=("bring it in", "drop the car off", "schedule a test drive", "come in and take a look",
                "get it on the schedule", "book a service appointment"),
        owned=("the car I bought from you in May", "the brake job you did last month",
               "the truck you guys worked on",
               "the tires I got from you", "the Accord I bought from you guys"),
        account_refs=("my account", "my service record", "my car loan", "my repair order"),
        bookings=("my service appointment", "my test drive", "my appointment", "my oil change"),
        problems=("is making that grinding noise again", "has the check engine light on again",
                  "is pulling to the left now", "still has the AC blowing warm", "is leaking oil"),
        new_problems=("my check engine light came on", "my brakes are squeaking", "my car won't start",
                      "I've got a flat tire", "my car is overheating", "my transmission is slipping"),
        status_items=("my car", "my title", "the registration", "the part you ordered", "my repair"),
        account_tasks=("get a copy of {acct}", "change the payment date on {acct}",
                       "update the phone number on {acct}"),
        info=("what time does the service department open", "do you take trade-ins",
              "do you work on European cars",
              "do you have a loaner program", "do you have a shuttle",
              "is the sales department open on Sunday"),
        campaigns=("summer-sales-event", "oil-change-29", "tire-promo", "certified-preowned"),
        staff=("a mechanic", "a salesperson", "someone in service"),
        faults=("my check engine light is on", "my brakes are grinding", "my car won't start",
                "my AC is blowing warm", "the car is pulling to the left",
                "there's a noise coming from the front end", "my transmission is slipping",
                "I have a slow leak in my tire"),
        fixes_for_anyone=True,
        terms=(
            "what does [my extended warranty] cover",
            "is the oil change included in [my maintenance package]",
            "how long is the warranty on [the brakes you did]",
            "does [my warranty] cover the battery",
        ),
        policies=(
                  "do you charge for diagnostics",
                  "what's your warranty on repairs",
                  "do you take Apple Pay",
                  "do you install parts that customers bring in",
                  "do I qualify for the zero percent financing",
                  "do you tow from {town}",
                  "is there a fee to hold a car",
                  "do you accept trade-ins with a loan on them",
                  "what's your labor rate",
                  "do you honor the manufacturer warranty",
                  "what credit score do I need for financing",
                  "is there a doc fee on your cars",
        ),
    ),
    Industry(
        name="dental",
        businesses=("Bright Smile Dental", "Oak Park Family Dentistry", "Gentle Care Dental",
                    "Lakeside Orthodontics",
                    "Downtown Dental Studio"),
        products=(
            Product(("a cleaning", "a teeth cleaning", "a checkup and cleaning", "a new patient exam"), (79,
                                                                                                         250)),
            Product(("a crown", "a filling", "a root canal", "a tooth extraction", "wisdom teeth removal"),
                    (150,
                                                                                                        1800)),
            Product(("teeth whitening", "whitening trays", "veneers"), (300, 9000)),
            Product(("Invisalign", "clear aligners", "braces for my son", "braces for my daughter"), (3000,
                                                                                                      7000)),
            Product(("an implant", "a dental implant", "dentures for my dad"), (1200, 5000)),
        ),
        addons=("whitening while I'm in for my cleaning", "a night guard", "fluoride for the kids",
                "a retainer", "sealants for my daughter"),
        deals=("the 99 dollar new patient special", "the free whitening with an exam",
               "the free Invisalign consult"),
        visits=("make an appointment", "get in to see the dentist", "book a new patient visit",
                "schedule a consultation", "come in", "get on the schedule"),
        owned=("the crown I got last month", "the filling you did last week", "my son's braces",
               "the night guard you made me", "my implant"),
        account_refs=("my account", "my chart", "my balance", "my treatment plan"),
        bookings=("my cleaning", "my appointment", "my son's appointment", "my consult"),
        problems=("came loose", "still hurts when I bite down", "is cracked", "broke last night",
                  "doesn't fit right"),
        new_problems=("I have a really bad toothache", "I chipped my front tooth", "my gums keep bleeding",
                      "I think I have a cavity", "my wisdom tooth is killing me"),
        status_items=("my insurance claim", "the claim you sent to my insurance", "my treatment plan",
                      "my refund"),
        account_tasks=("update the insurance on {acct}", "pay off {acct}", "get a copy of {acct}"),
        info=("do you take Delta Dental", "do you see kids", "are you open late on Thursdays",
              "do you accept Medicaid",
              "where do I park", "do you do sedation"),
        campaigns=("new-patient-99", "invisalign-consult", "whitening-spring"),
        staff=("the dentist", "the hygienist", "the doctor"),
        faults=("my tooth is killing me", "I chipped a tooth", "my crown came off", "my gums are bleeding",
                "I have a bad toothache", "my filling fell out"),
        fixes_for_anyone=True,
        terms=(
            "how many cleanings a year come with [my membership plan]",
            "does [my treatment plan] include the crown",
        ),
        policies=(
                  "do you accept Cigna",
                  "do you take my insurance",
                  "do you have a cancellation fee",
                  "do you offer payment plans",
                  "what's your policy on missed appointments",
                  "do you charge for x-rays with a cleaning",
                  "do you see patients from {town}",
                  "do I qualify for the new patient special",
                  "do you accept CareCredit",
                  "are you in network with Aetna",
                  "do you bill my insurance directly",
                  "do you take patients without insurance",
        ),
    ),
    Industry(
        name="medical",
        businesses=("Northview Medical Group", "Cedar Urgent Care", "Family Health Clinic",
                    "Pinecrest Physical Therapy",
                    "ClearView Dermatology"),
        products=(
            Product(("a physical", "a sports physical for my daughter", "an annual physical",
                     "a DOT physical"),
                    (75, 200)),
            Product(("a flu shot", "a covid test", "a TB test"), (25, 120)),
            Product(("a skin check", "a mole check", "a rash exam"), (120, 300)),
            Product(("physical therapy for my knee", "PT for my back",
                     "physical therapy after my shoulder surgery"),
                    (90, 180), "a visit"),
            Product(("botox", "a weight loss consult", "an allergy test", "a sleep study"), (150, 600)),
        ),
        addons=("a flu shot at my appointment", "the full lab panel", "the weight loss program",
                "a B12 shot"),
        deals=("the 49 dollar sports physical", "the free skin screening", "the new patient special"),
        visits=("get an appointment", "be seen", "come in", "get on the schedule", "book a visit",
                "see the doctor"),
        owned=("my visit last Tuesday", "the lab work I had done", "the X-ray I had done there",
               "my last PT session"),
        account_refs=("my patient portal", "my account", "my chart", "my bill from the clinic"),
        bookings=("my appointment", "my PT session", "my follow-up", "my physical"),
        problems=("never showed up in the portal", "got billed twice",
                  "came back with a charge I don't understand"),
        new_problems=("I've had a fever for three days", "I twisted my ankle", "my back has been killing me",
                      "I have a rash that won't go away", "my son has an ear infection"),
        status_items=("my lab results", "my referral", "the prior authorization", "my prescription refill",
                      "my records request"),
        account_tasks=("reset the password for {acct}", "update the insurance on {acct}", "pay {acct}"),
        info=("do you take Blue Cross", "are you accepting new patients", "do you do walk-ins",
              "what are your hours on Sunday", "do you see kids", "is the clinic in {town} open"),
        campaigns=("sports-physical", "flu-season", "derm-screening", "pt-direct-access"),
        staff=("the doctor", "a nurse", "the therapist"),
        faults=("my back is still hurting", "I have a rash that won't go away",
                "my knee has been swelling up", "I have a sinus infection", "my son has an ear infection"),
        fixes_for_anyone=True,
        terms=(
            "does [my membership] include lab work",
            "are telehealth visits part of [my plan with you]",
        ),
        policies=(
                  "do you accept Medicare",
                  "do you take Aetna",
                  "is there a fee for missed appointments",
                  "do you have a self pay rate",
                  "do I need a referral",
                  "do you see patients from {town}",
                  "do you do telehealth",
                  "what's your policy on prescription refills",
                  "am I eligible for the sliding scale",
                  "do you take United Healthcare",
                  "do you accept Medicaid patients",
                  "is there a copay for telehealth visits",
        ),
    ),
    Industry(
        name="legal",
        businesses=("Hart and Miller Law", "Garcia Injury Lawyers", "Reed Family Law",
                    "Summit Estate Planning",
                    "Brooks Defense Attorneys"),
        products=(
            Product(("a will", "a will and a trust", "estate planning", "a living trust",
                     "a power of attorney"),
                    (300, 3500)),
            Product(("a divorce", "help with a divorce", "a custody case", "a child support modification"),
                    (2500, 15000)),
            Product(("a DUI case", "help with a speeding ticket", "a criminal defense attorney"), (300,
                                                                                                   8000)),
            Product(("an injury case from a car accident", "a slip and fall case", "a workers comp claim"),
                    (0, 0)),
            Product(("help with an eviction", "an LLC set up", "a contract review", "a lease review"),
                    (300, 2500)),
        ),
        addons=("a power of attorney added to my trust", "a review of my new lease", "a deed transfer",
                "a health care directive"),
        deals=("the free case review", "the flat fee will package", "the free consultation"),
        visits=("set up a consultation", "meet with an attorney", "talk to a lawyer", "come in for a consult",
                "schedule a call with an attorney"),
        owned=("the trust you drafted for us", "my divorce paperwork", "the will you did for my mother",
               "the LLC you set up for me"),
        account_refs=("my case", "my file", "my case number", "my retainer"),
        bookings=("my consultation", "my appointment", "my call with the attorney"),
        problems=("still has the wrong name on it", "was never filed", "is missing a page"),
        new_problems=("I was in a car accident last week", "my landlord is trying to evict me",
                      "I got a DUI over the weekend", "my ex stopped paying child support",
                      "I got served papers"),
        status_items=("my case", "the court date", "the settlement check", "my filing",
                      "the documents I signed"),
        account_tasks=("update the contact info on {acct}", "get a copy of {acct}", "close {acct}"),
        info=("do you handle immigration", "do you do consultations over zoom", "where is your office",
              "do you handle cases in {town}", "do you speak Spanish", "how long have you been practicing"),
        campaigns=("injury-tv", "estate-seminar", "dui-defense", "family-law-search"),
        staff=("an attorney", "a lawyer", "a paralegal"),
        faults=("the other side filed something new", "I got another letter from the court",
                "my ex isn't following the agreement"),
        fixes_for_anyone=False,
        terms=(
            "does [my retainer] cover court appearances",
            "what does [my flat fee package] include",
        ),
        policies=(
                  "do you charge for the first consultation",
                  "do you work on contingency",
                  "what's your hourly rate",
                  "do you take payment plans",
                  "do you handle cases outside {town}",
                  "do you accept credit cards for the retainer",
                  "do I qualify for free legal aid",
                  "what's your refund policy on retainers",
                  "do you charge a flat fee for wills",
                  "is the consultation free",
                  "what percentage do you take on injury cases",
                  "do you take cases in {state}",
        ),
    ),
    Industry(
        name="solar",
        businesses=("SunPeak Solar", "BrightPath Energy", "Golden State Solar", "Solar Home Pros",
                    "Sunrise Power"),
        products=(
            Product(("solar panels", "a solar system for my house", "a 7 kilowatt system", "solar on my roof",
                     "a solar setup for our farm"), (14000, 38000)),
            Product(("a home battery", "a Powerwall", "battery backup", "a backup battery system"), (9000,
                                                                                                     16000)),
            Product(("an EV charger", "a level two charger in my garage"), (800, 2500)),
            Product(("panel cleaning", "a system inspection"), (150, 400)),
        ),
        addons=("a battery for my system", "more panels on my garage", "the monitoring upgrade",
                "critter guards around the panels"),
        deals=("the zero down solar program", "the 30 percent tax credit offer", "the free energy audit"),
        visits=("have someone come out for a site survey", "schedule an assessment", "set up a consultation",
                "get someone out to look at my roof", "book a home visit"),
        owned=("the panels you installed", "the system you put on my roof", "the inverter you guys installed",
               "my battery you put in"),
        account_refs=("my account", "my solar loan", "my system", "my lease"),
        bookings=("my install", "my site survey", "the inspection", "my appointment"),
        problems=("is showing offline in the app", "has a red light on it", "isn't producing like it should",
                  "is making a humming noise"),
        new_problems=("my electric bill keeps going up", "we just bought an electric car",
                      "we lose power every time there's a storm"),
        status_items=("the interconnection", "my install date", "my rebate check", "permission to operate",
                      "the permit for my system"),
        account_tasks=("transfer {acct} to the new owners", "update the bank info on {acct}",
                       "pay off {acct}"),
        info=("do you install in {town}", "how does net metering work", "do you offer leases",
              "how long have you been in business", "what panels do you use", "do you do commercial"),
        campaigns=("zero-down-solar", "tax-credit-2024", "battery-backup", "storm-season"),
        staff=("someone", "a consultant", "a tech"),
        faults=("my system is showing offline", "the inverter has a red light",
                "the panels aren't producing much", "my electric bill went up"),
        fixes_for_anyone=False,
        terms=(
            "what does the warranty on [my system] cover",
            "is [my solar lease] transferable if I sell",
            "does [my lease] include panel cleaning",
        ),
        policies=(
                  "do I qualify for the tax credit",
                  "is my roof eligible for solar",
                  "do you install in {town}",
                  "what's the warranty on the panels",
                  "do you charge for the site survey",
                  "what's the interest rate on your solar loans",
                  "do you work with homes in an HOA",
                  "is there a penalty if I cancel",
                  "what credit score do I need to qualify",
                  "do the panels come with a production guarantee",
                  "do you service systems other companies installed",
                  "is there a fee to transfer a lease",
        ),
    ),
    Industry(
        name="real_estate",
        businesses=("Coastal Realty", "Keller Home Team", "Parkside Properties",
                    "Greenway Property Management",
                    "Main Street Realty Group"),
        products=(
            Product(("the house on {street}", "the three bedroom listing on {street}",
                     "the condo on {street}",
                     "the townhouse over on {street}"), (250000, 900000)),
            Product(("a two bedroom apartment", "the one bedroom unit", "the studio you have listed",
                     "a rental for next month"), (1100, 2900), "a month"),
            Product(("a home valuation", "help selling my house", "a listing agent"), (0, 0)),
        ),
        addons=("a parking spot", "a storage unit in the building", "a second year on my lease",
                "the garage space"),
        deals=("the one month free rent special", "the free home valuation", "the open house this weekend"),
        visits=("schedule a showing", "come see it", "set up a tour", "see the place", "set up a walkthrough",
                "meet with an agent"),
        owned=("the unit I'm renting from you", "the apartment I'm in", "the house you sold us"),
        account_refs=("my lease", "my tenant portal", "my account", "my rent", "my deposit"),
        bookings=("my showing", "the walkthrough", "my appointment", "the move-in inspection"),
        problems=("has a leak under the sink", "has a broken heater", "still has the garage door broken",
                  "has mold in the bathroom"),
        new_problems=("we're relocating for work", "we need a bigger place", "we're thinking about selling"),
        status_items=("my maintenance request", "my deposit", "my application", "my lease renewal"),
        account_tasks=("renew {acct}", "set up autopay on {acct}", "add my roommate to {acct}",
                       "break {acct}"),
        info=("do you allow pets", "what neighborhoods do you cover", "is there an open house",
              "where is your office", "do you manage properties in {town}",
              "do you work with first time buyers"),
        campaigns=("spring-listings", "rental-move-in", "home-value-mailer", "open-house"),
        staff=("an agent", "the leasing agent", "someone"),
        faults=("the heater in my unit is broken", "the sink is leaking", "the garage door won't open",
                "there's mold in the bathroom"),
        fixes_for_anyone=False,
        terms=(
            "are pets allowed under [my lease]",
            "is there a penalty for breaking [my lease]",
            "does [my lease] include parking",
            "is renters insurance required on [my lease]",
        ),
        policies=(
                  "what's your pet deposit",
                  "is there an application fee",
                  "what's your commission rate",
                  "do you accept section 8",
                  "what credit score do I need to qualify",
                  "do you manage rentals in {town}",
                  "what's the policy on breaking a lease",
                  "is there a move-in fee",
                  "are pets allowed in your buildings",
                  "do you charge for parking",
                  "do you require renters insurance",
                  "how much is the security deposit usually",
        ),
    ),
    Industry(
        name="telecom",
        businesses=("Lightspeed Fiber", "ClearWave Wireless", "Metro Cable and Internet", "Horizon Mobile",
                    "Peak Broadband"),
        products=(
            Product(("internet service", "fiber internet", "the gig plan", "home internet",
                     "the 500 meg plan"),
                    (40, 95), "a month"),
            Product(("a new line", "a new phone line", "a family plan", "an unlimited plan"), (30, 140),
                    "a month"),
            Product(("the new iPhone", "a new phone", "the Galaxy", "a tablet"), (300, 1200)),
            Product(("cable TV", "TV service", "the streaming bundle"), (30, 120), "a month"),
        ),
        addons=("another line on my plan", "the sports package", "a faster speed tier",
                "a mesh wifi extender",
                "international calling"),
        deals=("the 30 dollar fiber deal", "the free phone when you switch",
               "the first three months free offer"),
        visits=("schedule an install", "get someone out to set it up", "get it installed",
                "book an installation",
                "come into the store"),
        owned=("the router you guys sent me", "the phone I bought from you", "the modem you installed"),
        account_refs=("my account", "my plan", "my account number", "my bill", "my service"),
        bookings=("my install", "the technician appointment", "my appointment"),
        problems=("keeps dropping", "won't connect", "has been down since yesterday", "is really slow"),
        new_problems=("we just moved into a new place", "our current internet is terrible",
                      "my kid needs a phone"),
        status_items=("my order", "the install", "my port request", "the new SIM card",
                      "the refund on my account"),
        account_tasks=("cancel {acct}", "change the due date on {acct}", "reset the password on {acct}",
                       "take a line off {acct}", "put {acct} on hold"),
        info=("do you have service at my address", "what are your store hours",
              "do you have a store near {town}",
              "do you need a credit check", "is there a contract"),
        campaigns=("fiber-launch", "switch-and-save", "holiday-phones", "bundle-tv"),
        staff=("a technician", "someone", "a tech"),
        faults=("my internet keeps dropping", "my wifi is really slow", "my phone has no signal at home",
                "the cable box won't turn on"),
        fixes_for_anyone=False,
        terms=(
            "does [my plan] include international calling",
            "is there a data cap on [my plan]",
            "can I use [my phone] in Mexico",
            "does [my plan] come with a hotspot",
            "is there a fee to upgrade [my plan]",
        ),
        policies=(
                  "is there an early termination fee",
                  "what's the activation fee",
                  "do I qualify for the low income program",
                  "is there a fee to switch plans",
                  "what's your return policy on phones",
                  "do you have coverage in {town}",
                  "is there a data cap",
                  "do you deliver phones to {town}",
                  "do you accept prepaid cards",
                  "do you charge for the router",
                  "is there a fee to pay by phone",
                  "do you service {town}",
        ),
    ),
    Industry(
        name="banking",
        businesses=("First Harbor Bank", "Summit Credit Union", "Riverside Savings",
                    "Cornerstone Federal Credit Union",
                    "Union Square Bank"),
        products=(
            Product(("a mortgage", "a home loan", "a refinance", "a 30 year fixed", "a jumbo loan"), (0, 0)),
            Product(("a car loan", "an auto loan", "a personal loan", "a loan for a boat"), (0, 0)),
            Product(("a business checking account", "a checking account", "a savings account", "a CD"), (0,
                                                                                                         0)),
            Product(("a home equity line", "a HELOC", "a credit card", "a secured credit card"), (0, 0)),
        ),
        addons=("a savings account linked to my checking", "overdraft protection",
                "a second card for my husband",
                "a CD with some of my savings"),
        deals=("the 5 percent CD special", "the 300 dollar bonus for new checking",
               "the no closing cost refinance"),
        visits=("meet with a loan officer", "set up an appointment with a banker", "come into a branch",
                "sit down with someone", "schedule a call with a mortgage person"),
        owned=("the card you sent me", "my new debit card", "the card I got from you",
               "the credit card you issued me"),
        account_refs=("my account", "my checking account", "my debit card", "my mortgage",
                      "my savings account",
                      "my balance"),
        bookings=("my appointment with the loan officer", "my appointment", "my closing"),
        problems=("got declined at the store", "has a charge on it I don't recognize", "got locked",
                  "won't work at the ATM"),
        new_problems=("we're buying our first house", "I need to consolidate some debt",
                      "my rate on my current mortgage is too high"),
        status_items=("my loan application", "the wire transfer", "my new card", "the dispute I filed",
                      "my mortgage payment"),
        account_tasks=("check {acct}", "transfer money out of {acct}", "dispute a charge on {acct}",
                       "move {price} from {acct} into savings", "send {price} to {name} from {acct}",
                       "see how much is in {acct}", "find out the balance on {acct}",
                       "pay off the credit card out of {acct}",
                       "reset the password for {acct}", "close {acct}", "order checks for {acct}"),
        info=("what time does the branch close", "do you have a branch in {town}",
              "is the drive-thru open on Saturday",
              "do you have notary service", "are you FDIC insured", "do you have a coin machine"),
        campaigns=("cd-special", "checking-bonus", "refi-season", "heloc-promo"),
        staff=("a banker", "a loan officer", "someone"),
        faults=("my card got declined", "I can't log into online banking", "I lost my debit card",
                "my card was stolen", "I got locked out of online banking",
                "there's a charge I don't recognize", "my direct deposit didn't show up"),
        fixes_for_anyone=False,
        terms=(
            "what's the interest rate on [my savings account]",
            "is there a monthly fee on [my checking account]",
            "what's the routing number for [my account]",
            "can I use [my debit card] overseas",
            "is there a foreign transaction fee on [my credit card]",
            "what's the daily limit on [my debit card]",
            "what's the APR on [my credit card]",
            "what's the exchange rate if I use [my card] in Canada",
        ),
        policies=(
                  "what's your routing number",
                  "what's the interest rate on your savings accounts",
                  "what's the APR on your credit cards",
                  "is there a fee for international transactions",
                  "what's the exchange rate for euros",
                  "is there a monthly fee on checking",
                  "what's the overdraft fee",
                  "what credit score do I need to qualify for a card",
                  "do you charge for wire transfers",
                  "what are your CD rates right now",
                  "is there a minimum balance on savings",
                  "do you charge a foreign transaction fee",
        ),
    ),
    Industry(
        name="retail",
        businesses=("Home Comfort Furniture", "Outdoor Gear Co", "TechMart Electronics",
                    "Green Thumb Garden Center",
                    "Bella Boutique", "Mattress Depot"),
        products=(
            Product(("a sectional sofa", "the gray sectional", "a king mattress", "a dining table",
                     "a recliner"),
                    (400, 3200)),
            Product(("a 65 inch TV", "a laptop", "a gaming PC", "a soundbar"), (150, 2200)),
            Product(("a patio set", "a riding mower", "a gas grill", "a kayak"), (300, 3000)),
            Product(("forty custom shirts for my team", "a gift card", "the blue dress in your window",
                     "a bulk order of mulch"), (50, 800)),
        ),
        addons=("the protection plan on the couch I ordered", "white glove delivery", "assembly",
                "a second set of sheets", "haul away for my old mattress"),
        deals=("the Labor Day sale", "the 20 percent off coupon", "the buy one get one half off deal",
               "the free delivery weekend"),
        visits=("come in and see it", "set up delivery", "put one on hold", "have it delivered",
                "pick it up"),
        owned=("the couch I bought", "the TV I got from you", "the mattress you delivered",
               "the package you shipped me"),
        account_refs=("my order", "my order number", "my account", "my rewards account", "my receipt"),
        bookings=("my delivery", "my pickup", "the delivery appointment"),
        problems=("arrived damaged", "is missing a piece", "stopped working", "is the wrong color",
                  "never showed up"),
        new_problems=("our couch is falling apart", "our TV just died", "we just moved into a bigger house"),
        status_items=("my order", "my delivery", "my refund", "my return", "the special order I placed"),
        account_tasks=("change the delivery address on {acct}", "cancel {acct}", "use my points on {acct}"),
        info=("what are your hours", "do you price match", "what's your return policy", "do you have parking",
              "do you have a store in {town}", "do you ship to {state}"),
        campaigns=("labor-day-sale", "holiday-electronics", "spring-garden", "clearance-event"),
        staff=("someone", "a salesperson", "the delivery guys"),
        faults=("the recliner stopped reclining", "the TV won't turn on", "the mattress is sagging",
                "the grill won't light"),
        fixes_for_anyone=False,
        terms=(
            "what's the return window on [my order]",
            "does [the couch I bought] come with a warranty",
            "can I use [my rewards points] online",
            "does [my protection plan] cover accidental damage",
        ),
        policies=(
                  "do you deliver to {town}",
                  "is there a restocking fee",
                  "do you accept Apple Pay",
                  "do you take returns without a receipt",
                  "do you charge for delivery",
                  "do you offer layaway",
                  "do you honor competitor coupons",
                  "what's the warranty on mattresses",
                  "do I qualify for store financing",
                  "what's your exchange policy",
                  "how long do I have to return something",
                  "do you ship to {state}",
        ),
    ),
    Industry(
        name="pest_control",
        businesses=("Guardian Pest Control", "BugBusters Exterminating", "Green Shield Pest",
                    "Critter Control Pros"),
        products=(
            Product(("a termite inspection", "termite treatment", "a termite bond"), (0, 2500)),
            Product(("ant treatment", "ant control", "a roach treatment"), (150, 350)),
            Product(("a quarterly pest plan", "monthly pest service", "mosquito spraying"), (40, 90),
                    "a month"),
            Product(("mice removal", "rodent exclusion", "raccoon removal from my attic", "a bat removal"),
                    (250, 900)),
            Product(("a bed bug treatment", "wasp nest removal", "bee hive removal"), (120, 2500)),
        ),
        addons=("mosquito service on my plan", "the termite bond", "an attic cleanout",
                "the rodent guarantee"),
        deals=("the 49 dollar first service", "the free termite inspection", "the spring mosquito special"),
        visits=("have someone come out", "schedule an inspection", "get a tech out",
                "set up a service visit"),
        owned=("the treatment you did last month", "my quarterly service", "the traps your guy put in"),
        account_refs=("my account", "my service plan", "my termite bond", "my contract"),
        bookings=("my service visit", "my inspection", "my appointment"),
        problems=("didn't work", "wore off already", "left stains on my carpet"),
        new_problems=("we have ants all over the kitchen", "I'm seeing mice in the garage",
                      "I found termites in the basement", "there's a wasp nest by the door",
                      "something is living in my attic"),
        status_items=("my next service", "the inspection report", "my refund",
                      "the termite letter for my closing"),
        account_tasks=("cancel {acct}", "update the card on {acct}", "move {acct} to my new house"),
        info=("are your treatments safe for pets", "do you service {town}", "are you open on weekends",
              "do you do commercial buildings", "are your products organic"),
        campaigns=("spring-ants", "termite-season", "mosquito-summer"),
        staff=("a tech", "someone", "an inspector"),
        faults=("we have ants in the kitchen", "I'm seeing mice in the garage",
                "there are roaches in the bathroom", "something is scratching in the attic",
                "there's a wasp nest by the front door"),
        fixes_for_anyone=True,
        terms=(
            "does [my service plan] cover mice",
            "is [my termite bond] transferable",
            "are callbacks included in [my plan]",
        ),
        policies=(
                  "do you charge for the inspection",
                  "is there a contract",
                  "do you come out to {town}",
                  "what's your guarantee if they come back",
                  "do you accept credit cards",
                  "do you treat commercial kitchens",
                  "is there a cancellation fee on the plan",
                  "are your treatments safe for kids",
                  "do you charge for follow-up visits",
                  "is {town} in your service area",
                  "do you offer a warranty on termite work",
                  "do you have a senior discount",
        ),
    ),
    Industry(
        name="moving",
        businesses=("Two Guys Moving", "Swift Movers", "Hometown Moving and Storage", "Big Blue Van Lines"),
        products=(
            Product(("a move from a two bedroom apartment", "a local move", "a long distance move to {state}",
                     "a move out of a three bedroom house", "a small move across town"), (500, 6500)),
            Product(("a storage unit", "a 10 by 10 storage unit", "storage for a couple months"), (80, 260),
                    "a month"),
            Product(("packing help", "a packing crew", "moving a piano", "help loading a truck"), (150, 900)),
        ),
        addons=("packing on my move", "extra insurance on my move", "a second truck",
                "storage after the move"),
        deals=("the midweek move discount", "the first month of storage free", "the senior discount"),
        visits=("book the move", "get on your schedule", "reserve a truck", "lock in a date",
                "have someone do a walkthrough"),
        owned=("my move last week", "the stuff you have in storage", "the move you did for us"),
        account_refs=("my reservation", "my booking", "my account", "my deposit", "my storage unit"),
        bookings=("my move", "my move date", "the walkthrough", "my reservation"),
        problems=("left a scratch on my floor", "broke one of my lamps", "was missing a box"),
        new_problems=("we're moving at the end of the month", "we just sold our house",
                      "my mom is moving in with us"),
        status_items=("my deposit", "my claim", "the delivery of my stuff", "my confirmation"),
        account_tasks=("change the date on {acct}", "cancel {acct}", "add an address to {acct}"),
        info=("are you licensed for interstate moves", "do you move on Sundays", "do you sell boxes",
              "do you move pianos", "are you insured"),
        campaigns=("summer-moves", "storage-promo", "college-moves"),
        staff=("a crew", "someone", "a mover"),
        faults=("a box is missing", "my dresser got scratched", "the truck is running late"),
        fixes_for_anyone=False,
        terms=(
            "does [my booking] include packing materials",
            "is there a fee to change [my move date]",
            "does [my reservation] include insurance",
        ),
        policies=(
                  "do you charge by the hour",
                  "what's your minimum",
                  "do you require a deposit",
                  "do you move to {state}",
                  "what's your cancellation policy",
                  "do you accept credit cards",
                  "are my things insured during the move",
                  "is there a fee for stairs",
                  "do you charge for travel time",
                  "do you serve {town}",
                  "what's your policy on damaged items",
                  "what's your hourly rate for two movers",
        ),
    ),
    Industry(
        name="hospitality",
        businesses=("Bella Notte Restaurant", "Harbor View Hotel", "The Grand Event Hall", "Lakeside Inn",
                    "Smoke House Catering"),
        products=(
            Product(("a table for four", "a reservation for Friday night",
                     "a private room for a birthday dinner",
                     "a table for two at seven"), (0, 0)),
            Product(("a room for two nights", "a king suite", "a room for the wedding weekend",
                     "two rooms for next week"),
                    (129, 399), "a night"),
            Product(("catering for fifty people", "a party tray", "food for my daughter's graduation party"),
                    (300, 3000)),
            Product(("the banquet hall for a wedding", "the event room for a retirement party",
                     "the rooftop for a party"),
                    (1500, 9000)),
        ),
        addons=("another night on my reservation", "an upgrade to a suite", "a cake for our table",
                "late checkout", "the wine pairing"),
        deals=("the date night special", "the weekend getaway package",
               "the catering special for graduations"),
        visits=("make a reservation", "book a table", "reserve a room", "book the hall",
                "come by and see the space",
                "schedule a tasting"),
        owned=("my stay last weekend", "the party you catered for us", "our dinner last night"),
        account_refs=("my reservation", "my booking", "my confirmation number", "my rewards account"),
        bookings=("my reservation", "my booking", "the tasting", "our table"),
        problems=("ended up charged twice", "had a problem with the bill", "wasn't what we ordered"),
        new_problems=("we're having a party next month", "my parents' anniversary is coming up",
                      "we have family coming into town"),
        status_items=("my refund", "my deposit", "the jacket I left there", "my confirmation email"),
        account_tasks=("cancel {acct}", "change the date on {acct}", "add a guest to {acct}"),
        info=("are you open on Mondays", "do you have vegan options", "is there parking",
              "do you take walk-ins",
              "is there a dress code", "do you have a shuttle from the airport"),
        campaigns=("date-night", "weekend-getaway", "wedding-season", "grad-catering"),
        staff=("someone", "the event coordinator", "a manager"),
        faults=("the room was never cleaned", "we got charged for a room service order we didn't get",
                "our dinner order was wrong"),
        fixes_for_anyone=False,
        terms=(
            "is breakfast included with [my reservation]",
            "what time is check-in for [my booking]",
            "is parking included with [my reservation]",
            "is [my reservation] refundable",
        ),
        policies=(
                  "do you accept reservations",
                  "is there a corkage fee",
                  "are pets allowed",
                  "what's the cancellation policy for rooms",
                  "do you deliver to {town}",
                  "is there a resort fee",
                  "how busy are you on Friday nights",
                  "do you charge for kids",
                  "what time is check-in",
                  "do you take reservations for large groups",
                  "is there a service charge for parties",
                  "do you accept checks",
        ),
    ),
    Industry(
        name="travel",
        businesses=("Premier Limo and Car Service", "Getaway Travel Agency", "Coastline Charter Bus",
                    "Metro Airport Shuttle", "Blue Sky Travel"),
        products=(
            Product(("a ride to the airport", "a car to the airport on {day}", "a limo for prom",
                     "a party bus for a bachelorette", "a ride from the airport to {town}"), (65, 900)),
            Product(("a charter bus for our church group", "a bus for fifty people",
                     "a shuttle for a wedding"),
                    (1200, 4500)),
            Product(("a round trip flight to {state}", "two plane tickets to {town}",
                     "a one way flight to {state}", "a flight for my mom to {state}"), (120, 900)),
            Product(("a cruise package", "a trip to Cancun for two", "an all inclusive package",
                     "flights and a hotel for a family of four", "a week in Orlando"), (1500, 8000)),
            Product(("a rental car for the week", "a minivan rental", "a one way rental to {state}"), (40,
                                                                                                       90),
                    "a day"),
        ),
        addons=("a return trip on my booking", "travel insurance on my trip", "an extra stop on my ride",
                "car seats for the kids", "an upgrade to a suite on the cruise"),
        deals=("the 10 percent off airport rides", "the all inclusive sale", "the prom package special"),
        visits=("book a ride", "reserve a car", "book the trip", "schedule a pickup",
                "set up a time to plan the trip",
                "reserve the bus"),
        owned=("the trip you booked for us", "my ride this morning", "the cruise you booked",
               "the rental car I got from you"),
        account_refs=("my booking", "my reservation", "my itinerary", "my account", "my confirmation number"),
        bookings=("my pickup", "my ride", "my reservation", "my airport pickup"),
        problems=("was an hour late", "had the wrong date on it", "ended up charged twice", "was a mess"),
        new_problems=("we're flying out next month", "we have a wedding coming up",
                      "my daughter's prom is in May",
                      "our group is going to a conference in {town}"),
        status_items=("my refund", "my itinerary", "my deposit", "the driver for my pickup",
                      "the cancellation I asked for"),
        account_tasks=("change the pickup time on {acct}", "cancel {acct}", "add a passenger to {acct}"),
        info=("do you go to the airport in {town}", "how many people fit in the van",
              "are your drivers licensed",
              "do you do one way trips", "do you need a deposit", "what's your cancellation policy"),
        campaigns=("airport-rides", "prom-season", "cruise-sale", "group-charter"),
        staff=("a driver", "an agent", "someone"),
        faults=("the driver never showed up", "the car was dirty", "my flight got changed"),
        fixes_for_anyone=False,
        terms=(
            "what's the baggage allowance on [my booking]",
            "is [my reservation] refundable",
            "what's the cancellation policy on [my booking]",
            "can I bring a car seat for [my ride]",
            "what are the carry-on rules for [my trip]",
        ),
        policies=(
                  "what's the baggage allowance",
                  "what are the carry-on rules",
                  "is there a fee to change a booking",
                  "do you serve {town}",
                  "do you accept cash",
                  "do I need a passport for the cruise",
                  "is there a fee for car seats",
                  "do you charge extra for tolls",
                  "what's the minimum age to rent a car",
                  "is there a fee for a second driver",
                  "what's your refund policy if a flight is cancelled",
                  "do you pick up from {town}",
        ),
    ),
    Industry(
        name="salon_spa",
        businesses=("Studio 9 Salon", "Serenity Day Spa", "Polished Nail Bar", "The Barber Lounge",
                    "Glow Med Spa"),
        products=(
            Product(("a haircut", "a women's cut and blow dry", "a men's haircut", "a trim for my son",
                     "a haircut and beard trim"), (25, 85)),
            Product(("highlights", "a color touch-up", "balayage", "a keratin treatment"), (90, 350)),
            Product(("a massage", "a 60 minute massage", "a couples massage", "a deep tissue massage"),
                    (80, 220)),
            Product(("a manicure", "a mani pedi", "gel nails", "a pedicure for two"), (30, 110)),
            Product(("a facial", "lash extensions", "eyebrow waxing", "a bridal hair and makeup trial"),
                    (40, 300)),
        ),
        addons=("a deep conditioning treatment", "a scalp massage with my cut", "gel polish on my pedicure",
                "an extra 30 minutes on my massage", "a brow tint"),
        deals=("the first visit 20 percent off", "the spa day package", "the 50 dollar facial special"),
        visits=("book an appointment", "get in with a stylist", "make an appointment", "come in",
                "get on the books", "book a time"),
        owned=("the color I got last week", "my haircut on Saturday", "the gift card I bought from you",
               "the massage package I bought"),
        account_refs=("my account", "my package", "my gift card", "my membership"),
        bookings=("my appointment", "my massage", "my haircut", "my color appointment"),
        problems=("came out way too dark", "is already chipping", "was uneven", "expired before I used it"),
        new_problems=("my hair is a mess after a bad cut somewhere else", "I have a wedding coming up",
                      "my back has been really tight"),
        status_items=("my gift card balance", "the refund on my package", "my membership credits"),
        account_tasks=("cancel {acct}", "freeze {acct}", "update the card on {acct}", "use {acct}"),
        info=("do you take walk-ins", "are you open on Sundays", "do you have parking",
              "do you do kids' haircuts", "do you use organic products", "how long does a color take"),
        campaigns=("first-visit", "bridal-season", "spa-day", "holiday-gift-cards"),
        staff=("a stylist", "a massage therapist", "a nail tech"),
        faults=("my nails are already chipping", "the color came out too brassy"),
        fixes_for_anyone=True,
        terms=(
            "how many massages a month come with [my membership]",
            "does [my gift card] expire",
            "can I share [my package] with my wife",
        ),
        policies=(
            "do you have a cancellation fee", "is there a charge if I'm late", "do you accept tips on a card",
            "do you take walk-ins for men's cuts", "is gratuity included",
            "do you charge extra for long hair",
            "do you offer student discounts", "what's your policy if I'm not happy with my color",
            "do you accept gift cards from the other location", "do I need a deposit to book",
            "do you have a membership", "is there a fee for a patch test",
        ),
    ),
    Industry(
        name="events",
        businesses=("The Majestic Theater", "Riverfront Amphitheater", "City Comedy Club",
                    "Starlight Cinemas",
                    "Fun Zone Family Center"),
        products=(
            Product(("two tickets for Saturday's show", "tickets to the concert on the {ordinal}",
                     "four seats for the matinee", "tickets for the comedy show",
                     "a pair of tickets in the balcony"),
                    (25, 180)),
            Product(("a birthday party package for my son", "a party room for twelve kids",
                     "a private screening for our office", "a group outing for thirty people"), (250, 2500)),
            Product(("season tickets", "a membership for the family", "a VIP package for the concert"),
                    (120, 1200)),
        ),
        addons=("parking passes with my tickets", "the meet and greet add-on", "pizza for the party",
                "two more tickets on my order", "an upgrade to the front row"),
        deals=("the two for one Tuesday deal", "the family four pack", "the early bird ticket special"),
        visits=("reserve seats", "book the party room", "hold some tickets", "reserve a table for the show",
                "book a time slot", "get on the list"),
        owned=("the tickets I bought online", "the party we had there on Saturday", "my season tickets"),
        account_refs=("my order", "my account", "my tickets", "my membership", "my confirmation number"),
        bookings=("my party booking", "my reservation", "my tickets for Friday", "my time slot"),
        problems=("never came to my email", "were for the wrong date", "got charged twice",
                  "show the wrong seats"),
        new_problems=("my son's birthday is next month", "we have family in town this weekend",
                      "our office wants to do a team outing"),
        status_items=("my refund", "my ticket order", "the tickets I bought online", "my party deposit"),
        account_tasks=("transfer {acct} to my brother", "cancel {acct}", "change the date on {acct}",
                       "resend {acct}"),
        info=("what time do doors open", "is there parking", "is the show all ages", "how long is the show",
              "can I bring a bag in", "is there a box office at the venue"),
        campaigns=("summer-concerts", "birthday-parties", "comedy-weekends", "holiday-shows"),
        staff=("someone in the box office", "the party coordinator", "a manager"),
        faults=("my tickets never showed up", "I got charged twice for my tickets"),
        fixes_for_anyone=False,
        terms=(
            "can I get a refund on [my tickets] if the show is moved",
            "does [my membership] include guest passes",
            "is parking included with [my VIP package]",
        ),
        policies=(
            "what's your refund policy on tickets", "is there a service fee on tickets",
            "do you accept cash at the door",
            "do you do student discounts", "is there a fee to exchange tickets",
            "do kids under two need a ticket",
            "what's your bag policy", "is there a two drink minimum", "do you offer group rates",
            "are service animals allowed", "is there a dress code", "do you allow outside food",
        ),
    ),
)


# --- people, places, times -------------------------------------------------------------------------

FIRST_NAMES = (
    "Mike", "Sarah", "David", "Jennifer", "Chris", "Maria", "James", "Linda", "Robert", "Ashley", "Kevin",
    "Tanya",
    "Jose", "Priya", "Tom", "Angela", "Brian", "Keisha", "Steve", "Nancy", "Carlos", "Emily", "Ray", "Donna",
    "Anthony", "Megan", "Luis", "Karen", "Derek", "Hannah", "Wei", "Fatima", "Gary", "Rosa", "Tyler",
    "Denise",
    "Omar", "Brenda", "Jake", "Olivia",
)
LAST_NAMES = (
    "Johnson", "Garcia", "Smith", "Nguyen", "Williams", "Patel", "Brown", "Martinez", "Davis", "Lopez",
    "Miller",
    "Wilson", "Anderson", "Thomas", "Jackson", "Kim", "Robinson", "Clark", "Lewis", "Walker", "Hernandez",
    "Young",
    "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Carter",
)
STREETS = (
    "Oak Street", "Maple Avenue", "Elm Drive", "Cedar Lane", "Washington Boulevard", "Lincoln Road",
    "Park Avenue",
    "Sunset Drive", "Highland Avenue", "Lakeview Court", "Mill Road", "Pine Street", "Church Street",
    "River Road",
    "Hillcrest Drive", "Meadow Lane", "Jefferson Street", "Forest Avenue", "Spring Street", "Willow Way",
)
TOWNS = (
    "Springfield", "Riverside", "Fairview", "Greenville", "Madison", "Franklin", "Clinton", "Georgetown",
    "Salem",
    "Ashland", "Oakdale", "Brookfield", "Lakewood", "Milford", "Centerville", "Kingston", "Dover", "Marion",
    "the north side", "downtown",
)
STATES = ("Texas", "Florida", "Ohio", "Arizona", "Georgia", "North Carolina", "Colorado", "Michigan",
          "Tennessee",
          "Oregon")
ROADS = ("I-95", "Route 9", "Highway 50", "the interstate", "Main Street", "the 405", "Route 1",
         "the parkway")
RADIO = ("the radio", "the morning show", "the sports station", "the country station", "the traffic report")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
AGENT_NAMES = ("Jessica", "Mark", "Tiffany", "Danny", "Amanda", "Eric", "Crystal", "Josh", "Lauren", "Marcus",
               "Nicole", "Paul", "Shannon", "Victor")

# --- the agent ---------------------------------------------------------------------------------------

GREETINGS = (
    "thank you for calling {biz}, this is {agent}, how can I help you",
    "thanks for calling {biz}, this is {agent}",
    "good morning, {biz}, {agent} speaking, how may I help you",
    "good afternoon, {biz}, this is {agent}, how can I help",
    "{biz}, this is {agent}, what can I do for you",
    "{biz}, how can I help you today",
    "hi, thanks for calling {biz}, how can I help you",
    "{biz}, {agent} speaking",
    "thank you for calling {biz}, my name is {agent}, how can I assist you",
    "{biz}, this is {agent}, how can I help you",
    "hello, {biz}",
)
RECORDING_NOTICES = (
    "this call may be recorded for quality assurance",
    "calls are recorded for training purposes",
)
AGENT_ACKS = ("okay", "mm-hmm", "sure", "got it", "okay, sure", "alright", "absolutely",
              "okay, I can help with that",
              "sure thing", "oh okay", "yeah, of course", "sure, no problem")
#: (agent question, caller answer templates) pairs that carry no class information.
AGENT_QUESTIONS = (
    ("can I get your name first", ("yeah, it's {first} {last}", "sure, {first} {last}", "it's {first}",
                                   "{first}, {first} {last}")),
    ("what's a good callback number", ("it's {phone}", "yeah, {phone}", "sure, it's {phone}")),
    ("and what's the address there", ("it's {num} {street}", "{num} {street} in {town}",
                                      "we're at {num} {street}")),
    ("and who am I speaking with", ("this is {first}", "{first} {last}", "my name's {first}")),
    ("what's the zip code there", ("it's {zip}", "uh, {zip}")),
    ("and what's your last name", ("{last}", "it's {last}, L-{letter}")),
)

# --- caller framing ----------------------------------------------------------------------------------

OPENERS = ("hi", "hi there", "hey", "hey, how's it going", "hello", "yes, hi", "yeah, hi", "good morning",
           "good afternoon", "hi, good morning", "oh hi", "hey there", "hello, yes", "hi, yeah", "yeah hello",
           "hi, how are you")
INTRODUCTIONS = ("my name is {first}", "this is {first} {last}", "it's {first}", "{first} here",
                 "this is {first} calling", "my name is {first} {last}")
#: Neutral context any caller may add; none of these meets a signal definition.
CONTEXT = (
    "I live over on {street}", "we're over in {town}", "I'm calling for my mom",
    "my husband asked me to call",
    "I'm on my lunch break", "sorry, I'm driving", "sorry it's a little loud here", "I just have a question",
    "I was hoping you could help me out", "I've got a couple of questions",
    "my wife told me to give you a call",
    "I'm calling on behalf of my dad", "we're out near {town}", "I'm not sure if I have the right department",
    "I was on hold earlier and got cut off", "I tried calling yesterday", "bear with me a second",
    "I'm at work so I have to be quick", "I'm calling from my cell", "we just moved here from {state}",
)
CLOSERS = ("thanks", "thank you", "let me know", "is that something you guys can help with", "appreciate it",
           "so yeah", "anyway, that's it", "whenever you get a chance", "thanks so much",
           "can you help me with that", "who would I talk to about that", "that's pretty much it")
FILLERS = ("um", "uh", "like", "you know", "so", "I mean", "basically", "well", "uh, yeah")
RESTARTS = ("I need-", "I was-", "we're-", "I wanted-", "so I-", "I'm- I'm", "do you-", "can you-", "it's-",
            "we- we", "I just-")

# --- signal banks --------------------------------------------------------------------------------------

#: (phrase, source it was tracked as). Every phrase is an ad_reference span.
AD_REFERENCES = (
    ("I saw your ad on facebook", "facebook_ads"), ("I saw you guys on facebook", "facebook_ads"),
    ("I saw your post on instagram", "facebook_ads"), ("I saw something on facebook", "facebook_ads"),
    ("I found you on google", "google_ads"), ("I saw your ad on google", "google_ads"),
    ("you came up first on google", "google_ads"), ("I looked you up online", "google_ads"),
    ("I heard your ad on {radio}", "radio"), ("I heard you guys on {radio}", "radio"),
    ("I got your mailer", "direct_mail"), ("I got a postcard from you guys", "direct_mail"),
    ("I got your coupon in the mail", "direct_mail"), ("I got the flyer you left on my door", "direct_mail"),
    ("I saw your billboard on {road}", "billboard"), ("I saw the sign on {road}", "billboard"),
    ("I saw your commercial on TV", "tv"), ("I saw your commercial last night", "tv"),
    ("my neighbor recommended you", "referral"), ("a friend of mine referred me", "referral"),
    ("my sister said you guys were great", "referral"), ("my coworker gave me your number", "referral"),
    ("I found you on yelp", "yelp"), ("I saw your reviews on yelp", "yelp"),
    ("I saw your truck in my neighborhood", "organic"), ("I saw the special on your website", "organic"),
)
#: An ad_reference span that names the offer; ``{deal}`` becomes a specific_need span after it.
AD_WITH_DEAL = ("I saw your ad for", "I'm calling about the ad for", "I got the mailer about",
                "I heard the radio ad about", "I saw on facebook you have", "I'm calling about the promo for")

NEED_FRAMES = ("I need {need}", "I'm looking for {need}", "I'm looking to get {need}",
               "we're thinking about getting {need}", "I'm interested in {need}",
               "I was wondering about {need}",
               "we need {need}", "I want to get {need}", "I'm in the market for {need}",
               "we might need {need}",
               "I'm calling about {need}", "I'm shopping around for {need}", "I'm trying to get {need}",
               "I'm thinking about {need}", "we're looking at {need}")
PURCHASE_FRAMES = ("I'd like to go ahead and order {need}", "I want to sign up for {need}",
                   "I'm ready to move forward with {need}", "I'd like to buy {need}",
                   "can I put a deposit down on {need}", "I want to go ahead with {need}",
                   "I'd like to set up {need}", "I want to get started on {need}", "I'm ready to buy {need}")
PRICE_BEFORE = ("how much is", "how much for", "how much do you guys charge for", "what do you charge for",
                "what's the price on", "what's the cost of", "how much would it be for",
                "what's your rate for",
                "what's the going rate for", "how much does it cost to get",
                "what kind of price are we talking for",
                "what would it cost for", "how much would you charge for", "what do you guys get for")
PRICE_AFTER = ("how much does that cost", "what does something like that run", "what's that gonna cost me",
               "how much would that be", "what are your prices", "what do you charge",
               "roughly how much are we talking",
               "what's the price", "what's it cost", "how much is that", "what would that run me",
               "is it expensive", "what are we looking at price wise", "what's the ballpark price")
QUOTES = ("can I get a quote", "I'd like to get an estimate", "could you give me a ballpark",
          "I was hoping to get a quote", "can someone give me an estimate", "I need a quote",
          "I'm looking for a free estimate", "can you guys quote me", "I'd like a bid on it",
          "can you put together some pricing for me", "can you send me a quote", "I need an estimate",
          "can I get a written estimate", "I'd like a second quote")
QUOTE_ON = ("can I get a quote on", "I'd like an estimate for", "could you give me a quote for",
            "I need an estimate on", "can you quote me on")
APPOINTMENT_FRAMES = ("can I {visit}", "I'd like to {visit}", "I want to {visit}", "can we {visit}",
                      "is it possible to {visit}", "I was hoping to {visit}", "I need to {visit}",
                      "could I {visit}")
APPOINTMENT_GENERIC = ("do you have any openings", "when's your next available", "can I get on the schedule",
                       "can I book something", "do you have anything available",
                       "I'd like to schedule something",
                       "can you fit me in", "what do you have open")
WHEN = ("next {day}", "this {day}", "on {month} {ordinal}", "sometime next week", "{day} morning",
        "{day} afternoon", "after {hour} on {day}", "around {hour} o'clock", "at {hour}:30 on {day}",
        "the week after next", "tomorrow", "in the morning")
URGENCY = ("it's an emergency", "it's kind of urgent", "as soon as possible", "asap", "today if possible",
           "it's pretty urgent", "I need somebody today", "right away", "this afternoon if you can",
           "it can't wait", "it's really urgent", "like today", "tonight if you can",
           "we need it done today", "it's an emergency situation")
SERVICE_URGENCY = ("I need this fixed today", "it's urgent", "this is an emergency",
                   "it needs to be fixed asap",
                   "I need it today", "it's really urgent")
EXISTING = ("I'm already a customer", "I'm a current customer", "I've been a customer for {n} years",
            "I'm an existing customer", "I have an account with you guys", "I'm a customer of yours",
            "we've used you guys before", "you guys have done work for us before",
            "I've been with you for years",
            "I'm already a client")
#: agent asks whether the caller is a customer; answers that are existing_customer spans.
EXISTING_ANSWERS = ("yes, I've been a customer for a while", "yeah, I'm a customer", "yes, I have an account",
                    "yeah, we've used you before")
NEW_ANSWERS = ("no, this would be the first time", "no, first time calling", "no, I'm new", "nope, not yet")
CUSTOMER_QUESTIONS = ("are you a current customer with us", "have you used us before",
                      "have you been here before",
                      "do you have an account with us")

# --- class-specific phrasing without signals -----------------------------------------------------------

STATUS_FRAMES = ("I'm calling to check on {item}", "I'm just following up on {item}",
                 "I wanted to see where {item} is at",
                 "can you tell me the status of {item}", "I haven't heard anything about {item}",
                 "is there any update on {item}", "I'm calling about {item}",
                 "I was wondering what's going on with {item}",
                 "I need to check on {item}")
ITEM_IDS = ("the number is {digits}", "it's under {first} {last}", "the confirmation number is {digits}",
            "I have the number right here, {digits}", "it should be under my wife's name")
BILLING = ("how much is {acct} this month", "how much do I owe on {acct}",
           "how much was the last payment on {acct}",
           "the estimate said {price} but {acct} came to {price2}",
           "what's the address to mail {acct} payment to",
           "can I pay {acct} over the phone", "where do I send the payment for {acct}",
           "{acct} went up again",
           "{acct} this month says {price}, it's usually {price2}",
           "there's a {price} charge on {acct} I don't recognize",
           "I got charged {price} and I don't know what it's for",
           "I was quoted {price} but I got billed {price2}", "why is {acct} so high this month",
           "I think I got double charged on {acct}", "how much do I still owe on {acct}",
           "I paid {price} last week and {acct} still shows a balance",
           "I need to set up a payment plan for {acct}",
           "I want to know why {acct} says {price}", "there's a late fee on {acct} and I paid on time")
REFUNDS = ("I want to return {owned}", "I'd like a refund on {owned}",
           "I paid {price} for {owned} and I want my money back",
           "I need to get my money back for {owned}", "I was promised a refund on {owned}")
RESCHEDULE = ("I need to reschedule {booking}", "I have to cancel {booking}",
              "can we move {booking} to {when}",
              "I need to push {booking} back a week", "something came up and I need to change {booking}",
              "I'm running late for {booking}", "I wanted to confirm {booking} for {when}")
COMPLAINTS = ("nobody showed up {when_past}", "I've been waiting {n} weeks on {item}",
              "I'm not happy with {owned}", "the guy you sent {when_past} was really rude",
              "I've called three times about {item}", "I was told someone would call me back {when_past}")
WHEN_PAST = ("yesterday", "on {day}", "last week", "this morning", "on {day} afternoon")
COME_BACK = ("can someone come back out", "can you send someone back out",
             "I need someone to come back and look at it",
             "can I bring it back in", "can you guys come take a look at it again")

INFO_GENERIC = ("what time do you close {dayref}", "what are your hours {dayref}", "are you open {dayref}",
                "where are you located", "what's your address", "is there parking",
                "do you take credit cards",
                "do you offer financing", "are you guys hiring", "do you have a website I can look at",
                "what's your fax number", "do you have another location closer to {town}",
                "are you open on the holiday", "is this the {town} location", "what's your email address",
                "how late are you open {dayref}", "do you guys speak Spanish",
                "what's the best way to get there from {road}",
                "do I need an appointment or can I just walk in", "how far out are you booking appointments",
                "do you do free estimates", "how long does an estimate usually take",
                "how does the process work",
                "do you guys take appointments on weekends", "how long does it usually take",
                "how long does an install usually take", "do you require a deposit",
                "how does the financing work",
                "do you guarantee your work", "do you offer a warranty", "do you have a cancellation fee",
                "how soon do you usually get people in", "do you have a payment plan option")
DAYREFS = ("on Saturday", "on Sundays", "on weekdays", "on {day}", "on the weekend", "on holidays",
           "during the week")
CAPABILITY = ("do you guys do {need}", "do you offer {need}", "is {need} something you guys do",
              "do you handle {need}", "do you have {need}", "do you work with {need}")
RESEARCH = ("I'm not ready to do anything yet", "I'm just gathering some information",
            "I'm just doing some research for now", "I'm not looking to buy anything just yet",
            "just curious", "this is just for down the road", "I'm just asking for a friend",
            "I'm just trying to understand how it works")
INFO_TO_BOOKING = ("because if so", "because", "if you are", "okay good, then", "perfect, because",
                   "and if that works")

# --- noise ---------------------------------------------------------------------------------------------

WRONG_NUMBER_ENDS = ("oh, sorry, wrong number", "sorry, I must have dialed wrong",
                     "oh I think I have the wrong number",
                     "never mind, sorry about that", "oh sorry, my mistake", "oops, sorry",
                     "oh, I must have the wrong number, sorry")
OTHER_PLACES = ("Dr. {surname}'s office", "the animal hospital", "Pizza Palace", "the {town} library",
                "the bank",
                "{name} {surname}'s house", "the post office", "Tony's barbershop", "the church office")
LENDERS = ("Capital Express Funding", "Business Lending Center", "Prime Merchant Services", "Rapid Advance")
VENDOR_NAMES = ("LocalBoost Marketing", "Pinnacle Payments", "RankHigh SEO", "Metro Uniform Supply",
                "LeadFlow Pro",
                "Yellow Directory Online", "Apex Staffing", "BrightSign Media")
TRADES = ("home service", "local", "small", "family-owned", "service")
SILENCE = ("hello", "hello? hello", "hello, can you hear me", "hello? is anyone there",
           "hello? I can't hear you",
           "hi, hello? you're breaking up", "hello? hello? hello")
AGENT_SILENCE = ("hello, are you there", "hello? I can't hear you", "sir? ma'am? hello",
                 "I think we have a bad connection", "if you can hear me, please call back")
POCKET_DIALS = ("no, put that down, sweetie", "I said we're going to the store after this",
                "where are my keys",
                "hold on, hold on, I'm trying to", "mom, mom, can I have", "no I told him that already")
PERSONAL = ("hey, is {agent} working today? it's her mom", "can you tell {agent} her brother called",
            "hi, I'm supposed to meet {agent} for lunch, is she around",
            "this is {agent}'s husband, is she busy")
SURVEYS = ("hi, we're conducting a short survey about local businesses, it will only take two minutes",
           "this is {first} with the {town} chamber of commerce, we're updating our member directory",
           "we're calling on behalf of the police and firefighters fund, would you like to make a donation")

# --- shared detail and confusable parts ----------------------------------------------------------------

#: Neutral details any non-noise caller may add (no signal).
DETAILS = (
    "it's a {beds} bedroom house", "we've been in the house about {n} years", "it's for my rental property",
    "I'm usually home after {hour}", "my number is {phone}", "the best time to reach me is after {hour}",
    "I work nights so mornings are better for me", "it's for my parents' place", "we're right off {road}",
    "it's under my husband's name", "I'm calling from work", "I've got two kids so it's hectic here",
    "I'm at {num} {street}", "my last name is {last}", "I'm not very good with this stuff",
    "I talked to someone there a while back", "I think it was {name} I spoke to before",
)
#: Says the business sold or did the thing the caller is talking about (existing_customer span),
#: by kind of business; industries not listed use ``"account"``.
EXISTING_CLAUSES: dict[str, tuple[str, ...]] = {
    "thing": ("you guys put it in last year", "you installed it back in {month}", "I bought it from you guys",
              "you did the work in {month}", "I had you out for the same thing in {month}",
              "your tech was just here last week", "you guys just fixed it", "I got it from you",
              "you worked on it a few weeks ago", "it's still under your warranty",
              "you did it for us last spring"),
    "visit": ("I was just in there for this", "the doctor saw me for it last week",
              "I was there for the same thing in {month}",
              "you guys treated it last month", "I'm a patient there", "I was seen there on {day}"),
    "account": ("it's all through you guys", "you handled it for us", "it was set up through you",
                "I'm a client of yours",
                "you guys set it up", "it was booked through you"),
}
EXISTING_CLAUSE_KIND = {"salon_spa": "visit", "home_services": "thing", "automotive": "thing",
                        "solar": "thing", "telecom": "thing",
                        "retail": "thing", "pest_control": "thing", "dental": "visit", "medical": "visit"}
#: An existing customer asks for a new booking: buying (existing_customer span first).
EXISTING_NEW_VISIT = ("I'm an existing patient", "I'm a regular there", "I've been coming to you for years",
                      "we've used you guys before", "I'm already a customer", "I'm on your list already")

WRONG_TARGETS = ("is this {other}", "is this the {town} office", "I'm trying to reach {other}",
                 "is {name} there",
                 "I'm looking for {other}", "hi, is this {name}", "I was trying to call {other}",
                 "I thought this was {other}")
#: Things a wrong-number caller wanted from the business they meant to reach.
#: What a wrong-number caller wanted from the business they meant to reach: (phrase, signal or None).
#: Spans are literal, so a real request keeps its signal even though the call is noise.
WRONG_REQUESTS = (("I need to make an appointment", "appointment_request"), ("I wanted to check on my order",
                                                                             None),
                  ("I'm calling about my bill", None), ("how much is a haircut", "price_inquiry"),
                  ("I need to refill a prescription", None), ("I'm calling about the job posting", None),
                  ("I wanted to order a pizza", None), ("I'm returning a call", None),
                  ("can I book a table for tonight", "appointment_request"), ("I need to talk to my lawyer",
                                                                              None),
                  ("can I get a quote on a tow", "quote_request"), ("I'm calling about my prescription",
                                                                    None))
AGENT_WRONG = ("I'm sorry, this is {biz}", "no, this is {biz}", "I think you have the wrong number",
               "sorry, you've reached {biz}", "no, there's nobody here by that name",
               "this is actually {biz}")
CALLER_WRONG_ACK = ("oh, sorry about that", "oops, my bad", "oh, wrong number then, sorry", "okay, sorry",
                    "oh, I must have dialed wrong", "sorry to bother you", "oh, okay, never mind")

ROBO_OPENINGS = ("this is an important message", "congratulations", "hello, this is a courtesy call",
                 "this is your final notice", "attention business owner", "hi, this is {first} from {lender}",
                 "attention homeowner", "this is an automated message", "we've been trying to reach you",
                 "hi, it's {first}, sorry I missed you", "hey, it's {first}, can you hear me okay",
                 "hi, this is {first} following up on your recent inquiry")
ROBO_LINKS = ("we're calling", "this call is", "we're reaching out", "this message is", "I'm calling")
ROBO_TOPICS = ("about your vehicle's extended warranty", "about your credit card interest rate",
               "regarding your Google business listing", "about solar programs for homeowners in your area",
               "about your auto insurance policy", "regarding your student loans",
               "about a pending charge on your Amazon account", "about your Medicare benefits",
               "regarding your business line of credit", "about your home's roof and storm damage",
               "about lowering your electric bill", "about your merchant account")
ROBO_OFFERS = ("you may qualify for a free quote", "you've been selected for a special offer",
               "you're pre-approved for up to {price}", "we can lower your monthly payment",
               "this is a limited time offer", "you may be overpaying", "your account will be suspended",
               "you qualify for a free inspection", "you're eligible for a lower rate",
               "we have a special price for you this week")
ROBO_ACTIONS = ("press 1 to speak with a specialist", "press 1 now", "call us back at {phone}",
                "stay on the line to speak with an agent", "press 2 to be removed from our list",
                "press 9 to opt out", "to claim your offer press 1",
                "a representative is waiting to assist you")

VENDOR_INTROS = ("this is {first} from {vendor}", "I'm calling from {vendor}",
                 "my name is {first} with {vendor}",
                 "{first} here from {vendor}", "hi, I'm with {vendor}")
VENDOR_PITCHES = ("we help {trade} businesses get more leads",
                  "we can save you a lot on your card processing fees",
                  "we do SEO and your website isn't showing up on google",
                  "we're offering a special rate on advertising",
                  "we sell uniforms and supplies to companies like yours",
                  "we have a special offer on office copiers",
                  "we're a marketing agency working with businesses in {town}",
                  "we'd like to feature your business in our directory",
                  "we can get you more five star reviews",
                  "I'm following up on the email I sent about your google reviews",
                  "we're a staffing agency with workers available this week",
                  "we can give you a free quote on your business insurance",
                  "we install security cameras for businesses")
VENDOR_ASKS = ("is the owner available", "who handles that for you", "can I speak to the manager",
               "who makes the decisions on that", "do you have a minute", "is this a good time",
               "who should I talk to", "can you transfer me to the person in charge",
               "is there a better time to reach the owner")

AGENT_WRAPS = ("okay, one second", "let me check on that for you", "sure, can you hold for a moment",
               "okay, let me see what I can do", "alright, give me one second", "okay, let me look into that")

#: A quote the caller asked for and is still waiting on: buying (quote_request span).
PENDING_QUOTES = ("the estimate you were going to send me", "my quote", "the quote I asked for last week",
                  "the estimate for my job", "the pricing your guy was putting together",
                  "the bid you were working up",
                  "the estimate from the walkthrough")
#: Links a service matter to a new purchase in the same call ("while I have you ...").
WHILE_I_HAVE_YOU = ("while I have you", "also", "oh, and one more thing", "and another thing", "and actually",
                    "and since I'm calling")

#: Negated requests: the words of another class with "not" in front (no signal: nothing is asked).
NEGATIONS = {
    "informational": ("I'm not looking for a quote or anything", "I don't need an appointment or anything",
                      "I'm not ready to buy anything", "I don't need anyone to come out",
                      "I'm not looking to schedule anything yet", "I don't need pricing or anything",
                      "I'm not looking to sign up for anything", "I'm not calling about my account",
                      "I don't need an estimate", "I'm not trying to book anything"),
    "service": ("I'm not calling to buy anything", "I don't need a quote", "I'm not looking to add anything",
                "I don't want to upgrade", "I don't need a new one", "I'm not looking for pricing",
                "I don't want to schedule anything new"),
    "buying": ("I'm not a customer yet", "I've never used you guys before",
               "we don't have an account with you",
               "it wasn't you guys that put it in", "I don't have an appointment yet",
               "I'm not calling about a bill",
               "this isn't about an existing order", "I'm not calling about my account",
               "we're not customers yet"),
    "noise": ("I'm not trying to sell you anything", "this isn't a sales call",
              "this will only take a minute"),
}

#: The agent hands the floor back after the caller introduced themselves (long openings).
AGENT_PROMPTS = ("hi {first}, how can I help you", "sure, what can I do for you",
                 "hi {first}, what can I help you with",
                 "okay, how can I help", "nice to meet you {first}, what's going on", "hi, go ahead")

#: Informational requests phrased like needs ("I need your fax number"): no purchase step.
INFO_NEEDS = ("I need your fax number", "I'm looking for your address", "I need your hours for {day}",
              "I'm trying to find your location", "I need the email address for your office",
              "I'm looking for directions to your office", "I need your mailing address",
              "I'm trying to get your hours", "I need the number for your other location",
              "I'm looking for your website")

#: A caller who starts and is cut off (bad line, hang-up): unfinished, so no signal and no intent.
DROPPED_STARTS = ("I was calling about", "I wanted to ask about the", "yeah, I'm calling because my",
                  "I had a question about", "so I saw your", "I need to- I was wondering if",
                  "it's about the",
                  "I'm calling to see if you guys", "so the reason I'm calling is", "I got a call from")
DROPPED_ENDS = ("hello? hello", "hello? are you there", "you're breaking up", "can you hear me? hello",
                "sorry, I'm losing you", "hello? I think the call dropped")

# --- informational beyond hours and location -------------------------------------------------------------

#: How a caller might pay; "do you accept {payment}" is a policy question.
PAYMENTS = ("credit cards", "Apple Pay", "checks", "cash", "Venmo", "American Express", "debit cards",
            "Zelle", "personal checks", "PayPal", "a credit card over the phone")
#: Industry-neutral policy questions (fees, discounts, cancellation, eligibility); informational.
INFO_POLICY = ("do you accept {payment}", "do you take {payment}", "is there a fee if I cancel",
               "what's your refund policy", "do you offer a senior discount",
               "do you have a military discount",
               "do I qualify for {deal}", "who qualifies for {deal}", "what do I need to qualify for {deal}",
               "is {deal} still going on", "does {deal} apply to everyone", "is there a fee to pay by card",
               "do you charge a deposit", "what's your cancellation policy", "is there a late fee",
               "do you offer any discounts", "do you price match", "do you charge for cancellations")

#: Service-area questions any business may get; informational.
INFO_AREA = ("do you serve the {town} area", "do you cover {town}", "is {town} in your area",
             "how far out do you go",
             "do you have anyone out near {town}", "do you come out as far as {town}",
             "do you work in {town}",
             "is {zip} in your area")

# --- registers: how the opening is voiced --------------------------------------------------------------

#: A rambling caller corrects themselves between pieces (never inside a signal span).
SELF_CORRECTIONS = ("no wait, sorry,", "I mean,", "or- no,", "sorry, let me back up,", "what am I saying,",
                    "actually, no,", "hold on, let me start over,", "well, not- I mean,",
                    "sorry, I'm all over the place,", "how do I put this,", "let me rephrase that,",
                    "or, well,", "wait, no,", "it's- it's", "the- the")
#: A cut-off question: the words that were coming when the line dropped (no signal, no intent).
CUT_TAILS = ("and also", "because I was", "or do I need to", "for like the", "and if so, what", "because my",
             "or is that", "and what about the", "because we're trying to", "and I wanted to", "or would I",
             "and is there a", "and my", "so that I can", "like the whole", "or if not, then")
#: What the agent says after the line cuts out.
AGENT_CUT = ("sorry, you cut out there", "hello? I lost you for a second", "I'm sorry, you broke up",
             "can you repeat that", "sorry, I didn't catch the end of that", "hello? are you still there")
#: A caller who greets and says nothing more in the whole opening (hang-up, dead air): noise.
GREETING_ONLY = ("hi, how are you", "hey, good morning", "yes, hi, hello", "hi, yeah, um",
                 "oh, hi, hold on one second",
                 "hi, sorry, give me one second", "hello, yes, hi there", "hi, um, hang on",
                 "yeah, hi, can you hold on",
                 "hi, is this {biz}", "hello? yeah, hi", "hi there, um, one sec",
                 "good afternoon, how are you today",
                 "hey, yeah, hi, um", "hi, sorry, I'm just pulling over", "hello, um, hi, yeah",
                 "oh, hi, sorry, hang on")
GREETING_ONLY_AGENT = ("hello?", "yes, how can I help you?", "sure, take your time.", "hello, are you there?",
                       "yes, it is, what can I do for you?", "no problem.", "mm-hmm?")
GREETING_ONLY_FOLLOW = ("um, yeah, hold on", "sorry, one sec", "uh, hang on, my kid is", "yeah, um",
                        "sorry, I'll call you back", "oh, um, never mind", "hold on",
                        "uh, sorry, wrong button")

#: Typed-style requests (an IVR, chat or voice-assistant transcript): terse, no greeting, no filler.
#: (lead, signal or None); the lead comes before a product name ({need}, a specific_need span).
TYPED_BUYING = (("price for", "price_inquiry"), ("how much for", "price_inquiry"),
                ("cost of", "price_inquiry"),
                ("how much is", "price_inquiry"), ("pricing on", "price_inquiry"),
                ("quote for", "quote_request"),
                ("estimate for", "quote_request"), ("get a quote on", "quote_request"),
                ("appointment for", "appointment_request"), ("schedule", "appointment_request"),
                ("book", "appointment_request"), ("reserve", "appointment_request"), ("need", None),
                ("looking for", None), ("want to buy", None), ("order", None), ("sign up for", None),
                ("I want", None), ("interested in", None), ("new customer,", None), ("I'd like", None),
                ("get me", None), ("I want to book", "appointment_request"),
                ("can you book", "appointment_request"),
                ("I'd like to reserve", "appointment_request"), ("help me book", "appointment_request"),
                ("I need to buy", None), ("I want to order", None), ("please find me", None))
#: How a typed request to an assistant may start before a verb ("can you cancel my order").
TYPED_LEADS = ("please", "can you", "I need to", "I want to", "help me", "I'd like to", "can you help me",
               "how do I", "I have to")
#: How a typed general question may start before a wh-question ("can you tell me what's the ...").
TYPED_ASK_LEADS = ("can you tell me", "I'd like to know", "tell me", "I want to know", "I need to know",
                   "could you tell me")
#: Typed service requests with an existing_customer slot: {acct} an account reference, {item} a
#: status item, {booking} a booking, {owned} something bought here.
TYPED_SERVICE = ("cancel {booking}", "{item} status", "status of {item}", "where is {item}",
                 "check on {item}",
                 "question about {acct}", "{acct} question", "problem with {acct}", "pay {acct}",
                 "make a payment on {acct}", "help with {acct}", "update {acct}",
                 "dispute a charge on {acct}",
                 "reschedule {booking}", "move {booking} to {when}", "refund for {owned}", "return {owned}",
                 "cancel {acct}", "close {acct}", "balance on {acct}", "wrong charge on {acct}",
                 "change address on {acct}", "billing issue with {acct}", "confirm {booking}",
                 "I need to cancel {booking}", "I want to check {item}", "issue with {owned}",
                 "need help with {acct}", "I have a question about {acct}")
#: Typed service requests that name no account ("card declined", "payment help"): no signal.
TYPED_SERVICE_PLAIN = ("payment help", "billing question", "password reset", "card declined", "login problem",
                       "tech support", "customer service", "make a payment", "report a problem",
                       "speak to billing", "refund request", "cancel service", "change payment method",
                       "update billing info", "can't log in", "charged twice", "autopay not working",
                       "dispute a charge", "need a receipt", "talk to support", "technical issue",
                       "payment didn't go through", "account help", "lost card", "service outage")
#: Typed general questions ({dayref}, {town}, {payment} slots); informational.
TYPED_INFO = ("hours {dayref}", "your hours", "address", "location near {town}", "return policy",
              "cancellation policy", "refund policy", "fees", "payment options", "accept {payment}?",
              "open {dayref}?", "phone number for the {town} location", "warranty info", "parking",
              "pet policy", "service area", "do you serve {town}", "directions", "holiday hours",
              "who qualifies for {deal}", "discounts?", "is {deal} still available")
#: Typed noise (a misdial into an IVR, a bot, a complaint about being called).
TYPED_NOISE = ("wrong number", "stop calling me", "who is this", "is this {other}", "test",
               "sorry wrong number",
               "remove me from your list", "you called me", "what is this number",
               "I got a missed call from this number",
               "this isn't {other}?", "trying to reach {other}")

# --- noise that uses business words ------------------------------------------------------------------

#: Robocalls about the callee's "account": scam and collection scripts with customer words.
ROBO_ACCOUNT = ("this is an automated message about your account ending in {n}{n}",
                "we've detected suspicious activity on your card ending in {n}{n}",
                "your Amazon order of {price} has been flagged",
                "this is your final notice about your car's extended warranty",
                "your loan application has been pre-approved",
                "there's a problem with your recent order",
                "your account will be suspended unless you call us back",
                "this is a message about your Apple iCloud account",
                "we're calling about your recent credit card payment",
                "your Social Security number has been flagged",
                "your home warranty is about to expire",
                "this is the billing department about your past due account",
                "your package could not be delivered",
                "you have a pending refund of {price} on your account")
#: Automated appointment reminders dialled to the wrong number (another business's patient/customer).
REMINDER_MISDIALS = ("this is an automated reminder from {other} about your appointment on {day} at {hour}",
                     "hello, this is {other} calling to confirm your appointment {when}",
                     "this is a reminder that your prescription is ready for pickup at {other}",
                     "this is {other} reminding you of your service appointment on {day}",
                     "your delivery from {other} is scheduled for {day} between {hour} and {hour}")
REMINDER_ACTIONS = ("press 1 to confirm, press 2 to cancel", "to reschedule, press 3",
                    "please call us back at {phone} if you need to make changes",
                    "reply or press 1 to confirm",
                    "if you're not {name}, please press 9")
#: Recruiters and staffing agencies calling the business.
RECRUITER_LINES = ("I'm a recruiter with {vendor}, we have candidates for your open positions",
                   "I'm calling from {vendor}, are you hiring right now",
                   "we place {trade} technicians and saw you're hiring",
                   "I'm reaching out about your job posting on Indeed, we can fill that role for you",
                   "I have a great candidate for your office manager opening",
                   "I'm trying to reach the person who does your hiring")
#: More vendor pitches: SEO, merchant services, supplies, software, financing.
VENDOR_PITCHES_MORE = ("we noticed your business isn't verified on google maps",
                       "we process credit cards for businesses like yours at a lower rate",
                       "I'm calling about your merchant services account",
                       "we can get you to the top of google in thirty days",
                       "we supply printer ink and toner at wholesale prices",
                       "we offer a scheduling software free for thirty days",
                       "we can fund your business up to {price} in twenty four hours",
                       "we're updating our records for your business listing",
                       "I'm calling about your website, it's not mobile friendly",
                       "we can cut your energy bill for the shop",
                       "we do janitorial service for offices in {town}",
                       "we're offering a free trial of our answering service")
#: Wrong numbers that name a service or another business: (who they meant to call, what they
#: wanted, that phrase's signal or None). Spans are literal, as in :data:`WRONG_REQUESTS`.
WRONG_SERVICE = (("is this the pharmacy", "I need a refill on my prescription", None),
                 ("is this the cable company", "my internet is out", "specific_need"),
                 ("I'm trying to reach the billing department at {other}", "", None),
                 ("is this {other}", "I'm calling about my order", "existing_customer"),
                 ("is this the dentist's office", "I need to move my cleaning", None),
                 ("I'm looking for the DMV", "I need to renew my license", None),
                 ("is this the pizza place", "I want to place an order for delivery", None),
                 ("is this the bank", "I need to check my balance", None),
                 ("is this the clinic on {street}", "I'm calling about my test results", None),
                 ("I thought this was the towing company", "I need a tow", "specific_need"),
                 ("is this the front desk", "can I get more towels in my room", None),
                 ("I'm calling for the leasing office at {other}", "", None),
                 ("is this {other}", "can I make an appointment for {day}", "appointment_request"),
                 ("is this the vet", "how much is a rabies shot", "price_inquiry"),
                 ("is this {other}", "I'm returning a call about my claim", None),
                 ("I was trying to call the IRS", "", None))
