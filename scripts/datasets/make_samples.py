"""Writes the sample datasets in assets/datasets/ (offline dataset discovery).

All text below was written for VibeFlow and is released under CC0 1.0 (see assets/datasets/LICENSE).
Rows are hand-written pieces combined with a fixed-seed random.Random, so rerunning this script
reproduces the files byte for byte.

Rerun: python3 scripts/datasets/make_samples.py   (Python 3.11, standard library only)
"""
import csv
import io
import json
import pathlib
import random
from datetime import datetime, timedelta

OUT = pathlib.Path(__file__).resolve().parents[2] / "assets" / "datasets"
SEED = 20241125


def write(name: str, text: str) -> None:
    (OUT / name).write_bytes(text.encode("utf-8"))


def sentence_case(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------------------------------------
# 1. Customer support for the fictional note-taking app "Nimbus Notes"
# ---------------------------------------------------------------------------------------------

MOBILES = [
    # (device, OS, store, store owner)
    ("iPhone", "iOS", "App Store", "Apple"),
    ("iPad", "iPadOS", "App Store", "Apple"),
    ("Android phone", "Android", "Google Play Store", "Google"),
    ("Pixel", "Android", "Google Play Store", "Google"),
    ("Galaxy tablet", "Android", "Google Play Store", "Google"),
    ("Samsung phone", "Android", "Google Play Store", "Google"),
]
DESKTOPS = ["Windows laptop", "MacBook", "work PC", "iMac", "Linux desktop", "Surface laptop"]
NOTE_TITLES = [
    "Grocery list", "Q3 planning", "Thesis outline", "Recipes to try", "Meeting notes 12/4",
    "Trip to Lisbon", "Book ideas", "Standup notes", "Garden plan", "Interview prep",
    "Wedding budget", "Lecture 7 - Thermodynamics", "Client call, March", "Reading list",
    "Sprint retro", "Moving checklist", "Novel draft ch. 3", "Workout log",
]
NOTEBOOKS = ["Work", "Personal", "Journal", "Research", "Client projects", "Recipes", "Class notes",
             "Family", "Side project"]
NAMES = ["Priya", "Tom", "Alejandro", "Mei", "Jonas", "Fatima", "Greg", "Aiko", "Sam", "Olu",
         "Claire", "Dmitri", "Hannah", "Rafael", "Ines", "Kwame", "Lena", "Marcus", "Sofia", "Yusuf"]
COWORKERS = ["my colleague", "my coworker", "my manager", "my sister", "my co-author",
             "my project partner", "my husband", "my wife", "our intern", "a client"]
PLANS = [("monthly", "$4.99"), ("annual", "$47.99")]

# Each scenario: customer message bodies (several phrasings) and replies that answer them.
# Slots: {mobile} {os} {store} {owner} {desktop} {note} {notebook} {n} {amount} {period}
#        {days} {size} {who}
SUPPORT = [
    {
        "sorry": True,
        "msgs": [
            "My notes aren't syncing between my {mobile} and my {desktop}. I edited \"{note}\" on the computer an hour ago and the phone still shows the old version.",
            "Sync seems stuck. Changes I make on my {desktop} never show up on my {mobile}, even after restarting the app.",
            "Why is \"{note}\" different on my {mobile} and my {desktop}? I thought everything synced automatically.",
            "Nothing has synced to my {mobile} since yesterday morning. The {desktop} app looks fine, but the phone is out of date.",
        ],
        "replies": [
            "Please open Settings > Sync on both devices, check that they're signed in to the same account, and tap \"Sync now\". If the {mobile} still shows old versions, sign out and back in there; your notes are stored on our servers, so nothing will be lost.",
            "First check that both devices are signed in to the same account under Settings > Sync, then tap \"Sync now\" on each. If the {mobile} is still behind after that, signing out and back in on it forces a full resync without losing any notes.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "I now have a note called \"{note} (conflicted copy)\" next to the original. What is it and which one should I keep?",
            "Every few days I get a \"conflicted copy\" of \"{note}\". Is something wrong with my account?",
            "There are two versions of \"{note}\" in my {notebook} notebook, one says conflicted copy. Did I lose anything?",
        ],
        "replies": [
            "A conflicted copy appears when the same note is edited on two devices before they could sync, so we keep both versions instead of overwriting one. Compare the two, copy anything you need into the original, then delete the conflicted copy.",
            "Nothing is lost: a conflicted copy is created when a note is changed on two devices while one of them was offline, and we keep both rather than guess. Merge what you need into the original and delete the copy; letting each device finish syncing before switching avoids it.",
        ],
    },
    {
        "msgs": [
            "I accidentally deleted my note \"{note}\". Is there any way to get it back?",
            "Help, I deleted the whole \"{notebook}\" notebook by mistake this morning!",
            "I cleaned up my notes yesterday and deleted \"{note}\", which I actually still need. Can you restore it?",
            "A note I deleted about a week ago, \"{note}\", turns out to be important. Is it gone for good?",
        ],
        "replies": [
            "Deleted notes and notebooks stay in the Trash for 30 days. Open Trash at the bottom of the sidebar, right-click (or long-press on mobile) the item and choose Restore, and it goes back where it was.",
            "Good news: anything deleted in the last 30 days is still in the Trash. Open Trash in the sidebar, select it and choose Restore; it will return to its original notebook with its attachments.",
        ],
    },
    {
        "msgs": [
            "I pasted over half of \"{note}\" by mistake and it already synced. Can I go back to the version from this morning?",
            "Is there version history? {who_cap} overwrote part of our shared note \"{note}\".",
            "Someone edited \"{note}\" and removed a whole section. How do I see what it looked like before?",
        ],
        "replies": [
            "Open the note's ⋯ menu and choose Version history, where you can preview earlier versions and restore any of them. Paid plans keep 30 days of history and the Free plan keeps 7 days.",
            "You can roll it back from the note's ⋯ menu > Version history: pick the version from before the change and click Restore. The current text is saved as a version too, so you can always switch back.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "I've requested a password reset twice and no email arrived.",
            "The password reset email never shows up. I've waited 20 minutes.",
            "Can't log in, forgot my password, and the reset link isn't coming through to my inbox.",
            "I clicked the reset link from yesterday's email and it says the link is invalid.",
        ],
        "replies": [
            "Reset emails come from no-reply@nimbusnotes.example and usually arrive within a few minutes, so please check your spam or promotions folder. Each link expires after one hour, so request a new one if yours is older; if nothing arrives, reply with your account email and we'll check it.",
            "Please check your spam folder for a message from no-reply@nimbusnotes.example, and note that reset links expire after one hour. If a fresh request still doesn't arrive, let us know the address you signed up with and we'll look into it.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "I got a new phone and can't receive my two-factor codes anymore. How do I log in?",
            "My old {mobile} broke and the authenticator app was on it. Now I'm locked out of Nimbus.",
            "Two-factor login is asking for a code but I reset my phone. What now?",
        ],
        "replies": [
            "On the sign-in screen choose \"Use a backup code\" and enter one of the codes you saved when you turned on two-factor authentication. If you don't have them, reply from your account email and we'll start an identity check, which takes 1-2 business days.",
            "You can sign in with one of your backup codes by choosing \"Use a backup code\" on the sign-in screen, then set up two-factor again on the new phone. Without backup codes we'll need to verify your identity, which takes 1-2 business days; just reply from your account email to start.",
        ],
    },
    {
        "msgs": [
            "I signed up with Google but now the app asks me for a password I never set.",
            "I can't log in on my {desktop}. It wants a password, but I always used \"Continue with Google\" on my phone.",
            "What's my password? I created the account with my Google login.",
        ],
        "replies": [
            "Your account uses Google sign-in, so it doesn't have a separate Nimbus password. On the sign-in screen choose \"Continue with Google\" and pick the same Google account you signed up with.",
            "Accounts created with Google don't have a Nimbus password of their own. Click \"Continue with Google\" instead of typing a password, making sure you choose the Google account you originally used.",
        ],
    },
    {
        "msgs": [
            "I was charged {amount} twice this month for my {period} plan. Please fix this.",
            "My bank statement shows two charges of {amount} from NIMBUS NOTES on the same day.",
            "Why did you bill me twice? I only have one account and one {period} subscription.",
        ],
        "replies": [
            "Sometimes one of the two is a temporary authorization that your bank releases within 3-5 days. If both charges are still there after that, reply with their dates and the last four digits of the card and we'll refund the duplicate.",
            "Sorry for the worry. One of the charges is often a pending authorization that disappears on its own within a few days; if both settle, send us the charge dates and the card's last four digits and we'll refund the extra one right away.",
        ],
    },
    {
        "msgs": [
            "I bought the annual Plus plan {days} days ago on your website but I'm not using it. Can I get a refund?",
            "Upgraded to yearly Plus {days} days ago, turns out I don't need it. Refund please?",
            "Is it possible to get my money back for the annual plan? I paid {days} days ago through the website.",
        ],
        "replies": [
            "Yes, annual plans bought on our website can be refunded in full within 14 days, and you're inside that window. I've started the refund of $47.99; it should reach your card in 5-10 business days, and your account will move back to the Free plan.",
            "No problem: website purchases of the annual plan are fully refundable for 14 days. I've issued the $47.99 refund, which usually shows up on your statement within 5-10 business days, and your notes stay available on the Free plan.",
        ],
        "slots": {"days": [1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 13]},
    },
    {
        "msgs": [
            "I forgot to cancel and my annual plan renewed {days} days ago. Can I get that charge refunded?",
            "You renewed my yearly subscription {days} days ago without warning. I want a refund.",
            "Got charged $47.99 for another year {days} days ago. I meant to cancel before that.",
        ],
        "replies": [
            "Our refund window for annual plans is 14 days from the charge, so I'm not able to refund this renewal. I've turned off auto-renew so you won't be charged again, and you keep Plus until the end of the year you've paid for.",
            "I'm sorry, but refunds are only possible within 14 days of an annual charge, and this one is older than that. Auto-renew is now off on your account, so there will be no further charges, and Plus stays active until the current period ends.",
        ],
        "slots": {"days": [19, 23, 30, 41, 45, 60, 75]},
    },
    {
        "msgs": [
            "I subscribed from my {mobile} and want a refund for this month's {amount}.",
            "Please refund my Plus subscription. I paid through the {store} on my {mobile} by mistake.",
            "How do I get a refund? I bought Plus in the app on my {mobile}, not on the website.",
        ],
        "replies": [
            "Because the subscription was bought through the {store}, the payment went to {owner} and we can't refund it from our side. You can request a refund from {owner} through your purchase history; if they approve it, your account will switch back to Free automatically.",
            "Purchases made in the app on your {mobile} are handled by {owner}, so the refund has to be requested from them through the {store} purchase history. We don't have access to those payments, sorry for the extra step.",
        ],
    },
    {
        "msgs": [
            "How do I cancel my subscription? I paid on your website.",
            "I want to cancel Plus before the next {period} charge. Where is the button?",
            "Please cancel my {period} plan, I'm switching to the free version.",
        ],
        "replies": [
            "Go to Settings > Account > Plan and choose Cancel subscription. You'll keep Plus features until the end of the period you've paid for, and all your notes stay available on the Free plan afterwards.",
            "You can cancel any time under Settings > Account > Plan > Cancel subscription. Nothing is deleted: Plus stays active until the paid period ends, then your account moves to the Free plan.",
        ],
    },
    {
        "msgs": [
            "How do I cancel Plus? I subscribed in the app on my {mobile}.",
            "I can't find a cancel option in Nimbus on my {mobile}. I subscribed there last year.",
        ],
        "replies": [
            "Subscriptions bought in the app on your {mobile} are managed by {owner}, so you cancel them in the {store}'s subscription settings rather than in Nimbus. Plus stays active until the end of the current period, and your notes remain on the Free plan.",
            "Since you subscribed through the {store}, the cancel option is in your {owner} account's subscription settings on the {mobile}, not inside our app. After cancelling you keep Plus until the period you've paid for ends.",
        ],
    },
    {
        "msgs": [
            "How can I export all my notes? I have about {n} and want a full backup.",
            "I'm leaving Nimbus. Is there a way to download everything, including attachments?",
            "Can I export my whole account to Markdown files?",
            "What's the easiest way to back up all {n} of my notes to my {desktop}?",
        ],
        "replies": [
            "Go to Settings > Account > Export all data to download a ZIP with every note as a Markdown file, plus a folder of attachments. For a single note, open it and choose File > Export, where you can pick PDF, Markdown or HTML.",
            "Settings > Account > Export all data creates a ZIP of all your notes as Markdown files, organized in folders by notebook and with attachments included. Large accounts can take a few minutes to package, so we email you a download link when it's ready.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "When I export \"{note}\" to PDF the table on the right gets cut off.",
            "PDF export crops my images, half of each screenshot is missing.",
            "Exported \"{note}\" as a PDF and the wide images don't fit on the page.",
        ],
        "replies": [
            "In the export dialog, turn on \"Fit content to page width\" and export again, which scales wide tables and images down to fit. If it's still cut off, switch the page orientation to Landscape in the same dialog.",
            "Please open File > Export > PDF and enable \"Fit content to page width\"; wide images and tables are cropped when it's off. Landscape orientation in that dialog also gives wide tables more room.",
        ],
    },
    {
        "msgs": [
            "I shared my \"{notebook}\" notebook with {who} but they can only view it, not edit.",
            "{who_cap} can open the note I shared but every field is read-only. How do I let them make changes?",
            "How do I give {who} edit access to \"{note}\"?",
        ],
        "replies": [
            "Open the Share menu, find their email in the list of people and change their access from \"Can view\" to \"Can edit\". They may need to close and reopen the note or notebook for the change to show up.",
            "In the Share menu, each person has an access setting next to their name; switch it from \"Can view\" to \"Can edit\". The change applies right away, though the other person might need to reopen the note.",
        ],
    },
    {
        "msgs": [
            "I shared a public link to \"{note}\" by mistake. How do I turn it off?",
            "Can I stop a shared link from working? I posted the link to \"{note}\" in the wrong group chat.",
            "How do I make \"{note}\" private again? It has a public link.",
        ],
        "replies": [
            "Open the note, click Share and switch off \"Public link\"; the old link stops working immediately. If you share it again later, a new link is created, so the old one can't be reused.",
            "Click Share on the note and turn off \"Public link\", which disables the link right away for everyone who has it. Turning it back on later generates a different link.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "The app crashes as soon as I open it on my {mobile} since the last update.",
            "Nimbus closes immediately on my {mobile}. I tried twice, same thing.",
            "After updating {os}, Nimbus Notes won't launch anymore. It just shows the logo and quits.",
        ],
        "replies": [
            "Please update Nimbus to the latest version from the {store}, which fixes a crash at startup, and then restart the device. If it still crashes, reply with your {os} version; your notes are safe on our servers in the meantime.",
            "We fixed a startup crash in the newest release, so please update from the {store} and restart the device. If that doesn't help, uninstalling and reinstalling is safe, since everything is synced to your account.",
        ],
    },
    {
        "msgs": [
            "I'm flying tomorrow. Will my notes be available offline on my {mobile}?",
            "Does Nimbus work without internet? I'll be camping for a week with no signal.",
            "Is there an offline mode on mobile? I need my \"{notebook}\" notebook on the subway.",
        ],
        "replies": [
            "The desktop app always keeps every note offline. On mobile, open a notebook's ⋯ menu and turn on \"Available offline\" (a Plus feature), then let it download while you're still connected; edits you make offline sync when you're back online.",
            "Yes: on your phone or tablet, open the notebook's ⋯ menu and switch on \"Available offline\", which is included with Plus. The desktop app keeps all notes offline automatically. Do it before you lose signal so the notes can download; changes made offline sync later.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "I edited notes on my {mobile} while offline and the changes don't show on my {desktop}.",
            "Worked offline on the train yesterday, now those edits are missing on my other devices.",
            "Do offline edits sync? Some changes I made without wifi are not on my {desktop}.",
        ],
        "replies": [
            "Offline edits are stored on the device and upload the next time it connects, so open the app on the device you used offline while it's online, and wait for the sync icon to stop spinning. Please don't sign out before that, because signing out discards edits that haven't synced yet.",
            "Those edits are still on the device you used offline, waiting to upload. Open Nimbus there with a working connection and leave it open until syncing finishes; avoid signing out or reinstalling first, as that would remove the unsynced changes.",
        ],
    },
    {
        "msgs": [
            "It says I've reached my monthly upload limit. I only added a few photos.",
            "Why can't I add images anymore? There's a message about an upload limit.",
            "What is the upload limit on the free plan? I keep hitting it.",
        ],
        "replies": [
            "The Free plan includes 60 MB of uploads per month, which resets on the 1st; typed text doesn't count, only attachments and images. Plus raises the limit to 10 GB a month if you need more right away.",
            "Only attachments count toward the Free plan's 60 MB monthly upload limit, and high-resolution photos add up quickly. The limit resets on the first of each month, or Plus gives you 10 GB per month.",
        ],
    },
    {
        "msgs": [
            "I can't attach a {size} MB PDF to my note. Is there a size limit?",
            "Trying to attach a {size} MB video and it fails every time.",
            "Upload of a {size} MB file to \"{note}\" keeps failing with \"file too large\".",
        ],
        "replies": [
            "Yes, single attachments are limited to 25 MB on the Free plan, and Plus allows files up to 200 MB. Alternatively you can compress the file or add a link to it in the note.",
            "That file is over the Free plan's 25 MB per-attachment limit. Plus raises the limit to 200 MB per file; otherwise, storing the file elsewhere and pasting a link into the note works well.",
        ],
        "slots": {"size": [30, 38, 45, 52, 64, 80, 96, 120, 150]},
    },
    {
        "msgs": [
            "I can't log in on my {mobile}. It says I've reached the device limit.",
            "Why does Nimbus say \"device limit reached\"? I only use my {desktop} and my {mobile}, plus an old tablet.",
            "I'm on the free plan and can't sign in on a third device.",
        ],
        "replies": [
            "The Free plan lets you stay signed in on 2 devices at once. You can sign out a device you no longer use under Settings > Account > Devices, or upgrade to Plus for unlimited devices.",
            "Free accounts can be signed in on two devices at a time. Remove an old one under Settings > Account > Devices and then sign in again, or switch to Plus, which has no device limit.",
        ],
    },
    {
        "msgs": [
            "Search doesn't find words that are inside my PDF attachments.",
            "Why can't I search the text in scanned documents I attached?",
            "I'm on Plus and search still misses a PDF I uploaded ten minutes ago.",
        ],
        "replies": [
            "Searching text inside PDFs and images is a Plus feature; on the Free plan, search covers note titles and note text only. On Plus, new attachments can take up to 15 minutes to be indexed after upload.",
            "Text inside attachments becomes searchable on Plus once it has been indexed, which can take up to 15 minutes for new files. On the Free plan only note titles and typed text are searched.",
        ],
    },
    {
        "msgs": [
            "How do I import my notes from Evernote?",
            "I'm moving from Evernote with around {n} notes. Can Nimbus import them with tags?",
            "Is there an Evernote importer? I'd like to bring my notebooks over.",
        ],
        "replies": [
            "Export your notebooks from Evernote as .enex files, then choose File > Import > Evernote (.enex) in the Nimbus desktop app. Tags and attachments come across, and each .enex file becomes its own notebook.",
            "Yes: export each Evernote notebook as an .enex file and import them in the desktop app under File > Import > Evernote (.enex). Tags, attachments and creation dates are kept; large imports of a few thousand notes can take several minutes.",
        ],
    },
    {
        "msgs": [
            "Do you have a student discount?",
            "I'm a university student, is Plus cheaper for students?",
            "Any discount for teachers or students?",
        ],
        "replies": [
            "Yes, students and teachers get 50% off Plus. Sign in with your school email address and go to Settings > Account > Plan > Education discount to verify it.",
            "We offer 50% off Plus for students and educators. Add your school email under Settings > Account > Plan > Education discount, confirm it from the email we send, and the discount applies to your next payment.",
        ],
    },
    {
        "msgs": [
            "I need an invoice with my company name and VAT number for our {period} plan.",
            "Where can I download invoices? My accountant needs them.",
            "Can you add our company address to past invoices?",
        ],
        "replies": [
            "Go to Settings > Account > Billing, fill in your company name, address and VAT number under Billing details, and download invoices from the same page. Invoices issued before you added the details can be regenerated there with one click.",
            "All invoices are under Settings > Account > Billing. Add your company details there first; past invoices can then be regenerated so they include them.",
        ],
    },
    {
        "msgs": [
            "How do I delete my account and all my data?",
            "Please delete my Nimbus account permanently.",
            "I want to close my account. Will my notes be erased from your servers?",
        ],
        "replies": [
            "Go to Settings > Account > Delete account. Your account is deactivated right away and permanently deleted, including all notes, after 7 days; signing back in within that time cancels the deletion, so export your notes first if you want a copy.",
            "You can do this yourself under Settings > Account > Delete account. After a 7-day grace period everything, including notes and attachments, is permanently removed from our servers, so download an export first if you'd like to keep anything.",
        ],
    },
    {
        "msgs": [
            "How do I change the email address on my account?",
            "I'm changing jobs and need to move my account to my personal email.",
            "Can I update my login email? The old address will stop working soon.",
        ],
        "replies": [
            "Go to Settings > Account > Email, enter the new address and confirm it from the verification email we send there. Until you confirm, keep signing in with your old address.",
            "Under Settings > Account > Email you can enter a new address; we'll send a confirmation link to it. Once you click that link, the new email becomes your login and your notes stay exactly as they are.",
        ],
    },
    {
        "msgs": [
            "Can I set a reminder on a note?",
            "It would be great to get a notification for \"{note}\" next Monday. Is that possible?",
            "Feature request: reminders or due dates on notes.",
        ],
        "replies": [
            "Not yet, but reminders are on our roadmap and I've added your vote to the request. For now, many people put the date in the note title and pin the note to the top of the notebook.",
            "Reminders aren't available yet, though they're one of our most requested features and I've passed your request on. A workaround is to pin the note and add the date to its title.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "With {n} notes the app takes ages to start on my {desktop}.",
            "Nimbus has become really slow on my {desktop}, especially search.",
            "Typing in long notes lags on my {desktop}. Is that normal with {n} notes?",
        ],
        "replies": [
            "Please update to the latest desktop version, which loads notebooks on demand and starts much faster with large libraries. If it's still slow, Settings > Advanced > Rebuild search index usually helps, especially after a big import.",
            "First make sure you're on the newest desktop release, since it improved performance for large libraries. Then try Settings > Advanced > Rebuild search index; it takes a few minutes on a large library but often fixes slow search and startup.",
        ],
    },
    {
        "msgs": [
            "How do I add a coworker to our Team plan?",
            "We just hired someone. How do I invite her to our Nimbus team workspace?",
            "I'm the admin of our team account. How do I add two more people and what will it cost?",
        ],
        "replies": [
            "As a Team admin, open Settings > Team > Members, click Invite and enter their work email. Each member costs $8 per month, prorated for the rest of the current billing period.",
            "Go to Settings > Team > Members and use Invite to send an invitation to each person's email. New members are billed at $8 per month each, prorated from the day they join.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "My card keeps getting declined when I try to upgrade to Plus.",
            "Payment failed three times. The card works everywhere else.",
            "Why is my payment being declined? I'm trying to buy the {period} plan.",
        ],
        "replies": [
            "Declines usually come from the card issuer, often because of international online payments, so please check with your bank or try another card. We also accept PayPal at checkout on the website.",
            "We don't decline cards ourselves; the bank returns the decline, frequently for cross-border payments. A quick call to your bank usually fixes it, or you can pay with PayPal on the website instead.",
        ],
    },
    {
        "sorry": True,
        "msgs": [
            "Notes I write on my {mobile} look fine but the formatting is messed up on my {desktop}.",
            "Bullet lists in \"{note}\" show up as plain text on my {desktop}.",
            "Checkboxes I add on my {mobile} turn into weird symbols on the desktop app.",
        ],
        "replies": [
            "This happens when the desktop app is older than the mobile one and doesn't know the newer formatting yet. Please update the desktop app to the latest version; the note itself is fine and will display correctly after the update.",
            "Your desktop app is most likely out of date, so it can't render formatting created by the newer mobile version. Updating it under Help > Check for updates should fix how the note looks, without any changes to the note itself.",
        ],
    },
]

GREETINGS = ["Hi,", "Hello,", "Hey,", "Hi there,", "Hello Nimbus team,", "Hi support,", "Good morning,", "", "", ""]
CLOSINGS = ["Thanks.", "Thanks in advance!", "Any ideas?", "Please help.", "Thank you!", "Appreciate it.",
            "Thanks for your help.", "", "", ""]
REPLY_OPENERS = ["Thanks for reaching out.", "Thanks for writing in.", "Happy to help with this.",
                 "Thanks for getting in touch.", "Thanks for contacting Nimbus support.", "", "", ""]
SORRY_OPENERS = ["Sorry for the trouble.", "Sorry about that.", "Sorry you ran into this."]
CHANNELS = ["email", "email", "chat", "chat", "in-app", "web form"]


def support_rows(rng: random.Random, count: int) -> list[list[str]]:
    # Spread scenarios evenly, then shuffle so neighbouring rows differ.
    order = [i % len(SUPPORT) for i in range(count * 3)]
    rng.shuffle(order)
    seen_msgs: set[str] = set()
    rows = []
    ticket = 48213
    when = datetime(2024, 3, 4, 8, 12, 0)
    for idx in order:
        if len(rows) == count:
            break
        sc = SUPPORT[idx]
        mobile, os_name, store, owner = rng.choice(MOBILES)
        period, amount = rng.choice(PLANS)
        who = rng.choice(COWORKERS)
        slots = {
            "mobile": mobile, "os": os_name, "store": store, "owner": owner,
            "desktop": rng.choice(DESKTOPS), "note": rng.choice(NOTE_TITLES),
            "notebook": rng.choice(NOTEBOOKS), "n": rng.choice([40, 120, 350, 800, 1500, 2300, 4000]),
            "period": period, "amount": amount, "who": who, "who_cap": sentence_case(who),
            "days": 0, "size": 0,
        }
        for key, values in sc.get("slots", {}).items():
            slots[key] = rng.choice(values)
        body = rng.choice(sc["msgs"]).format(**slots)
        reply = rng.choice(sc["replies"]).format(**slots)
        name = rng.choice(NAMES) if rng.random() < 0.35 else ""
        greeting = rng.choice(GREETINGS)
        closing = rng.choice(CLOSINGS)
        if rng.random() < 0.1:
            # A letter: greeting, body and sign-off on their own lines.
            parts = [greeting or "Hello,", body, (closing or "Thanks,") + "\n" + name if name else closing or "Thanks."]
            msg = "\n\n".join(parts)
        else:
            inline = greeting[:-1] + rng.choice(["!", "."]) if greeting else ""
            msg = " ".join(p for p in [inline, body, closing] if p)
            if name:
                msg += " " + rng.choice(["- ", "— "]) + name
        if msg in seen_msgs:
            continue
        seen_msgs.add(msg)
        opener = rng.choice(REPLY_OPENERS + (SORRY_OPENERS if sc.get("sorry") else []))
        if name and rng.random() < 0.6:
            opener = f"Hi {name}, " + (opener[:1].lower() + opener[1:] if opener else "thanks for your message.")
        full_reply = f"{opener} {reply}" if opener else reply
        ticket += rng.randint(1, 37)
        when += timedelta(minutes=rng.randint(4, 190))
        rows.append([f"NN-{ticket}", when.strftime("%Y-%m-%dT%H:%M:%SZ"), msg, full_reply, rng.choice(CHANNELS)])
    assert len(rows) == count, len(rows)
    return rows


def write_support(rng: random.Random) -> int:
    rows = support_rows(rng, 300)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ticket_id", "created_at", "customer_message", "support_reply", "channel"])
    w.writerows(rows)
    write("customer-support.csv", buf.getvalue())
    return len(rows)


# ---------------------------------------------------------------------------------------------
# 2. Technical Q&A (OpenAI chat format)
# ---------------------------------------------------------------------------------------------

SYSTEM_PROMPTS = [
    "You are a helpful assistant that answers programming questions concisely and accurately.",
    "You are a senior software engineer. Give short, correct answers with the exact command or code when it helps.",
    "You answer developer questions in a few clear sentences.",
    "You are a friendly coding assistant. Be brief and precise.",
]

# (question phrasings, answer)
QA = [
    # git
    (["How do I undo my last commit but keep the changes?",
      "I committed too early. How can I undo the last git commit without losing my work?"],
     "Run `git reset --soft HEAD~1`. It moves the branch back one commit and leaves your changes staged, so you can edit them and commit again. Use `git reset HEAD~1` instead if you want the changes unstaged."),
    (["How do I change the message of my last commit?",
      "I made a typo in my last git commit message. How do I fix it?"],
     "Run `git commit --amend -m \"New message\"`, or just `git commit --amend` to edit it in your editor. If you already pushed the commit, you'll have to force-push, preferably with `git push --force-with-lease`, so warn anyone who shares the branch."),
    (["How do I discard my local changes to a single file in git?",
      "How can I throw away uncommitted edits to one file and get the committed version back?"],
     "Run `git restore path/to/file` (Git 2.23+) or the older `git checkout -- path/to/file`. This permanently discards the uncommitted changes in that file, so make sure you don't need them."),
    (["How do I unstage a file I added with git add?",
      "I ran git add on the wrong file. How do I remove it from the staging area?"],
     "`git restore --staged path/to/file` removes it from the staging area but keeps your edits in the working tree. On older Git versions, `git reset HEAD path/to/file` does the same."),
    (["What does git stash do?",
      "How do I temporarily put aside my uncommitted changes in git?"],
     "`git stash` saves your uncommitted changes to tracked files and resets the working tree to the last commit, so you can switch to something else. Bring them back with `git stash pop`, and use `git stash -u` if untracked files should be stashed too."),
    (["What's the difference between git merge and git rebase?",
      "Should I use merge or rebase to bring main into my feature branch?"],
     "`git merge` joins two branches with a merge commit and keeps the history exactly as it happened. `git rebase` replays your commits on top of the other branch, giving a linear history but creating new commit hashes. Rebase your own unpublished work freely, but avoid rebasing commits others have already pulled."),
    (["How do I see what I've staged for the next commit?",
      "git diff shows nothing even though I changed files. Why?"],
     "`git diff` only shows unstaged changes, so once you `git add` a file its changes disappear from that output. Use `git diff --staged` (or `--cached`) to see what is staged for the next commit."),
    (["I added a file to .gitignore but git still tracks it. Why?",
      "How do I stop tracking a file that's already committed without deleting it?"],
     "`.gitignore` only affects untracked files, so files Git already tracks stay tracked. Run `git rm --cached path/to/file` to remove it from the index while keeping it on disk, then commit that change."),
    (["How do I see the commit history as one line per commit?",
      "Is there a compact way to view git log?"],
     "`git log --oneline` prints each commit as a short hash and its subject line. Add `--graph --all` to draw all branches as a graph."),
    (["How can I find out who last changed a line in a file?",
      "What does git blame do?"],
     "`git blame path/to/file` shows, for each line, the commit, author and date that last changed it. Add `-L 10,20` to limit it to lines 10 to 20."),
    (["How do I copy one commit from another branch onto my current branch?",
      "What is git cherry-pick used for?"],
     "`git cherry-pick <commit>` applies the changes from that commit on top of your current branch as a new commit. If it conflicts, fix the files, `git add` them and run `git cherry-pick --continue`."),
    (["How do I find which commit introduced a bug?",
      "How does git bisect work?"],
     "Use `git bisect`: run `git bisect start`, mark the current commit with `git bisect bad` and a known good one with `git bisect good <commit>`. Git checks out a commit halfway between, you mark it good or bad, and it repeats until it finds the first bad commit; finish with `git bisect reset`."),
    (["I deleted a branch with unmerged commits. Can I get it back?",
      "How do I recover a commit I lost after a git reset --hard?"],
     "Run `git reflog`, which lists where HEAD has pointed recently, including commits no longer on any branch. Find the hash you want and run `git branch recovered <hash>` to get it back; entries for commits that are no longer reachable expire after 30 days by default."),
    (["What's the difference between git fetch and git pull?",
      "Does git fetch change my local files?"],
     "`git fetch` downloads new commits from the remote and updates remote-tracking branches like `origin/main`, but doesn't touch your local branches or files. `git pull` is a fetch followed by a merge (or a rebase, if configured) into your current branch."),
    (["git push says my branch has no upstream branch. What should I do?",
      "How do I push a new local branch to GitHub for the first time?"],
     "Run `git push -u origin <branch>`. The `-u` sets the upstream, so later a plain `git push` or `git pull` knows which remote branch to use."),
    (["How do I see which remotes my repository has?",
      "How can I check the URL of origin in git?"],
     "`git remote -v` lists each remote with its fetch and push URLs. To change one, use `git remote set-url origin <new-url>`."),
    # shell
    (["How do I search for a string in all files in a directory recursively?",
      "What's the command to grep through every file under the current folder?"],
     "`grep -rn \"text\" .` searches every file under the current directory and prints matches with file names and line numbers. Add `-i` for case-insensitive matching; ripgrep (`rg \"text\"`) does the same faster and skips files in `.gitignore`."),
    (["What's the difference between > and >> in the shell?",
      "How do I append output to a file instead of overwriting it?"],
     "`>` redirects output to a file and replaces its contents, while `>>` appends to the end of the file. Both create the file if it doesn't exist."),
    (["How do I redirect both stdout and stderr to the same file?",
      "My script's error messages don't end up in the log file. How do I capture stderr too?"],
     "Use `command > out.log 2>&1`, which sends stdout to the file and then points stderr at the same place. The order matters: `2>&1` has to come after `> out.log`. In bash, `command &> out.log` is a shorthand."),
    (["How do I find out which process is using port 8080?",
      "Something is already listening on port 8080. How do I see what it is?"],
     "On Linux or macOS, `lsof -i :8080` shows the process and its PID. On Linux, `ss -ltnp | grep 8080` works too; run either with `sudo` to see processes owned by other users."),
    (["How do I see how much disk space each folder uses?",
      "Which command shows free disk space on Linux?"],
     "`df -h` shows used and free space per mounted filesystem in human-readable units. `du -sh *` shows the total size of each item in the current directory, which helps find what is taking up space."),
    (["How do I keep a command running after I close my SSH session?",
      "My long job dies when I log out of the server. How do I prevent that?"],
     "Start it with `nohup command > out.log 2>&1 &` so it ignores the hangup signal when you log out. For interactive work, running it inside `tmux` or `screen` lets you detach and reattach later."),
    (["How do I set an environment variable for just one command?",
      "What's the difference between VAR=1 ./script and export VAR=1?"],
     "Prefixing a command, as in `DEBUG=1 ./run.sh`, sets the variable only for that command. `export DEBUG=1` sets it for the rest of the shell session and every program started from it."),
    (["What does $? mean in bash?",
      "How do I check whether the previous shell command succeeded?"],
     "`$?` holds the exit status of the last command: 0 means success and any other value means failure. For example, `grep -q foo file; echo $?` prints 0 if foo was found and 1 if not."),
    (["What's the difference between single and double quotes in bash?",
      "Why doesn't my variable expand inside single quotes in bash?"],
     "Single quotes keep everything literal, so `'$HOME'` stays exactly that. Double quotes still expand variables and command substitutions like `$(date)`, but prevent word splitting and globbing, which is why you should quote variables: `\"$file\"`."),
    (["How do I watch a log file as new lines are written?",
      "How do I follow a log in real time on Linux?"],
     "`tail -f app.log` prints new lines as they are appended. Use `tail -F` if the log may be rotated or recreated, so tail reopens the new file."),
    (["How do I make a bash script stop on the first error?",
      "What does set -euo pipefail do?"],
     "Put `set -euo pipefail` near the top of the script. `-e` exits when a command fails, `-u` treats unset variables as errors, and `pipefail` makes a pipeline fail if any command in it fails, not just the last one."),
    (["How do I search my shell command history?",
      "Is there a quick way to rerun a command I typed yesterday?"],
     "Press Ctrl+R in bash or zsh and start typing part of the command; press Ctrl+R again to cycle through older matches and Enter to run it. `history | grep word` also works."),
    (["How do I replace a word in a file from the command line?",
      "How do I use sed to do find and replace in place?"],
     "With GNU sed on Linux, `sed -i 's/old/new/g' file.txt` replaces every occurrence in place. On macOS, BSD sed needs an explicit backup suffix, so use `sed -i '' 's/old/new/g' file.txt`."),
    (["How do I create a symbolic link?",
      "What's the ln command for a symlink?"],
     "`ln -s /path/to/target link_name` creates a symbolic link called link_name that points to the target. Without `-s`, `ln` creates a hard link instead."),
    (["How do I list all files including hidden ones?",
      "ls doesn't show my .env file. How do I see it?"],
     "Files starting with a dot are hidden by default; `ls -a` shows them. `ls -la` also shows permissions, owners, sizes and dates in a long listing."),
    (["How do I print the 10 largest files under a folder?",
      "How can I find what's taking up the most space in a directory tree?"],
     "`find . -type f -exec du -h {} + | sort -rh | head -n 10` lists the 10 largest files under the current directory, biggest first. `sort -h` understands the human-readable sizes that `du -h` prints."),
    # python
    (["How do I create a virtual environment in Python?",
      "What's the standard way to make a venv for a Python project?"],
     "Run `python3 -m venv .venv`, then activate it with `source .venv/bin/activate` on Linux or macOS, or `.venv\\Scripts\\activate` on Windows. Packages you install with pip afterwards go into that environment only."),
    (["What's the difference between a list and a tuple in Python?",
      "When should I use a tuple instead of a list?"],
     "Lists are mutable, so you can append, remove and change items; tuples are immutable once created. Because of that, a tuple of hashable values can be a dict key or set member, and it's a good fit for fixed records like coordinates."),
    (["Why does my Python function keep items from previous calls in its default list?",
      "What's wrong with def f(items=[]) in Python?"],
     "Default values are evaluated once, when the function is defined, so the same list is shared by every call. Use `def f(items=None):` and inside write `if items is None: items = []`."),
    (["What does if __name__ == \"__main__\" do in Python?",
      "Why do Python scripts end with if __name__ == \"__main__\":?"],
     "The block runs only when the file is executed directly, not when it is imported as a module. It lets a file work both as a reusable module and as a script."),
    (["What's the difference between == and is in Python?",
      "Should I write x == None or x is None?"],
     "`==` compares values, while `is` checks whether two names refer to the very same object. Use `is` for singletons like `None` (`x is None`) and `==` for everything else."),
    (["How do I read a JSON file in Python?",
      "How can I load JSON from a file into a Python dict?"],
     "Use the json module: `with open(\"data.json\", encoding=\"utf-8\") as f: data = json.load(f)`. Use `json.loads` to parse a string, and `json.dump`/`json.dumps` to write JSON."),
    (["What is a list comprehension in Python?",
      "How do I build a filtered list in one line in Python?"],
     "A list comprehension builds a list in a single expression, for example `[x * x for x in nums if x > 0]` squares the positive numbers in nums. It's usually clearer and a bit faster than a loop that calls `append`."),
    (["What do *args and **kwargs mean in Python?",
      "How do I write a Python function that accepts any number of arguments?"],
     "`*args` collects extra positional arguments into a tuple and `**kwargs` collects extra keyword arguments into a dict. For example, `def log(*args, **kwargs): print(*args, **kwargs)` passes everything through to print."),
    (["How do I remove duplicates from a list but keep the original order?",
      "How can I deduplicate a Python list while preserving order?"],
     "`list(dict.fromkeys(items))` keeps the first occurrence of each item in order, because dicts preserve insertion order. `list(set(items))` also removes duplicates but loses the order."),
    (["How do I merge two dictionaries in Python?",
      "What's the cleanest way to combine two dicts?"],
     "In Python 3.9+ write `merged = a | b`; on older versions use `{**a, **b}`. In both cases values from b win when a key exists in both."),
    (["How do I format a float with two decimal places in Python?",
      "How do I print 3.14159 as 3.14 in Python?"],
     "Use an f-string with a format spec: `f\"{value:.2f}\"` turns 3.14159 into `3.14`. Add a comma for thousands separators, as in `f\"{value:,.2f}\"`."),
    (["How do I catch more than one exception type in Python?",
      "Can one except clause handle both ValueError and KeyError?"],
     "Yes, put the types in a tuple: `except (ValueError, KeyError) as e:`. The block then runs for either exception and `e` is the exception that was raised."),
    (["How do I save the packages I've installed to requirements.txt?",
      "How do I share the exact Python dependencies of my project?"],
     "`pip freeze > requirements.txt` writes every installed package with its exact version, and `pip install -r requirements.txt` installs them elsewhere. Run it inside the project's virtual environment so unrelated packages aren't included."),
    (["What is the GIL in Python?",
      "Why don't Python threads make my CPU-heavy code faster?"],
     "In CPython, the Global Interpreter Lock lets only one thread execute Python bytecode at a time. Threads still help for I/O-bound work, but for CPU-bound work use `multiprocessing` or `concurrent.futures.ProcessPoolExecutor`."),
    (["How do I get the index while looping over a list in Python?",
      "What's the Pythonic way to loop with a counter?"],
     "Use `enumerate`: `for i, item in enumerate(items):` gives you the index and the item. Pass `start=1` if you want counting to begin at 1."),
    (["How do I read an environment variable in Python?",
      "How can my Python script get the value of API_KEY from the environment?"],
     "`os.environ.get(\"API_KEY\")` returns the value, or `None` if it isn't set; you can pass a default as the second argument. `os.environ[\"API_KEY\"]` raises `KeyError` when the variable is missing."),
    (["How fast is looking up a key in a Python dict?",
      "Is `x in my_list` slower than `x in my_set`?"],
     "Dicts and sets are hash tables, so lookups take O(1) time on average. Checking `x in my_list` scans the list and takes O(n), which is why converting to a set pays off for repeated membership tests."),
    (["How do I iterate over two lists at the same time in Python?",
      "What does zip do in Python?"],
     "`zip(a, b)` pairs up items, so `for x, y in zip(names, scores):` walks both lists together. It stops at the shorter list; pass `strict=True` (Python 3.10+) to raise an error if the lengths differ."),
    (["How do I list all .txt files in a folder and its subfolders in Python?",
      "How do I walk a directory recursively with pathlib?"],
     "`from pathlib import Path` and then `sorted(Path(\"logs\").rglob(\"*.txt\"))` returns every .txt file under logs, including subfolders. Use `glob` instead of `rglob` to look only in the folder itself."),
    # rust
    (["What's the difference between String and &str in Rust?",
      "Should my Rust function take a String or a &str?"],
     "`String` is an owned, growable, heap-allocated string, while `&str` is a borrowed view of string data owned by someone else. Functions that only read text should usually take `&str`; a `&String` coerces to it automatically."),
    (["What does the ? operator do in Rust?",
      "How do I propagate errors in Rust without writing match everywhere?"],
     "Put `?` after an expression that returns a `Result` or `Option`: it returns early with the error (or `None`) and otherwise gives you the value. The enclosing function must return a compatible type, and errors are converted with `From`."),
    (["What's the difference between unwrap and expect in Rust?",
      "Is it OK to use unwrap in Rust?"],
     "Both panic when the value is `Err` or `None`; `expect(\"msg\")` adds a message explaining what went wrong. They're fine in tests, examples and cases that truly can't fail, but library and application code should usually return the error with `?`."),
    (["What does \"cannot borrow as mutable because it is also borrowed as immutable\" mean?",
      "Rust complains I can't push to a Vec while I'm iterating over it. Why?"],
     "You're holding an immutable reference, for example by iterating over the Vec or keeping `&v[0]` around, while trying to mutate the same value. Finish using the reference first, clone what you need, or collect the changes and apply them after the loop."),
    (["What's the difference between an array and a Vec in Rust?",
      "When should I use [T; N] instead of Vec<T>?"],
     "`[T; N]` is a fixed-size array whose length is part of its type and which is stored inline, often on the stack. `Vec<T>` is a growable, heap-allocated list; accept `&[T]` in function parameters to work with both."),
    (["Why is my Rust program so slow?",
      "What's the difference between cargo build and cargo build --release?"],
     "A plain `cargo build` produces an unoptimized debug build in `target/debug/`, which can be many times slower. Use `cargo build --release` (or `cargo run --release`) for an optimized binary in `target/release/` when you measure or ship performance."),
    (["How do I print a struct in Rust?",
      "Why does println!(\"{:?}\", my_struct) fail to compile?"],
     "`{:?}` needs the type to implement `Debug`, so add `#[derive(Debug)]` above the struct. Then `println!(\"{:?}\", value)` prints it, and `{:#?}` pretty-prints it over several lines."),
    (["What's the difference between Clone and Copy in Rust?",
      "Why can I reuse an i32 after passing it to a function but not a String?"],
     "`Copy` types such as integers, `bool` and `char` are duplicated implicitly, so the original stays usable after being passed by value. `String` isn't `Copy`, so passing it moves ownership; call `.clone()` for an explicit copy or pass a reference instead."),
    (["What is Option in Rust?",
      "How does Rust handle null values?"],
     "Rust has no null; a value that may be missing has type `Option<T>`, which is either `Some(value)` or `None`. You handle it with `match`, `if let Some(x) = opt`, or helpers like `unwrap_or` and `map`."),
    (["How do I run only some of my Rust tests?",
      "How do I see println! output in cargo test?"],
     "`cargo test name_part` runs only tests whose names contain that text. Output from passing tests is captured by default; add `-- --nocapture` to see it."),
    (["What do cargo fmt and cargo clippy do?",
      "Is there a linter for Rust?"],
     "`cargo fmt` formats your code with rustfmt, and `cargo clippy` runs Clippy, a linter that catches common mistakes and unidiomatic code. If they're missing, install them with `rustup component add rustfmt clippy`."),
    # sql
    (["What's the difference between WHERE and HAVING in SQL?",
      "Why can't I use COUNT(*) in a WHERE clause?"],
     "`WHERE` filters individual rows before grouping, and `HAVING` filters groups after `GROUP BY` and aggregation. So aggregate conditions like `HAVING COUNT(*) > 5` belong in HAVING."),
    (["What's the difference between INNER JOIN and LEFT JOIN?",
      "Why do rows disappear when I join two tables?"],
     "`INNER JOIN` returns only rows that have a match in both tables, so unmatched rows disappear. `LEFT JOIN` keeps every row from the left table and fills the right table's columns with NULL when there's no match."),
    (["Why does WHERE column = NULL return no rows?",
      "How do I find rows where a column is empty (NULL) in SQL?"],
     "Any comparison with NULL, even `NULL = NULL`, yields unknown rather than true, so those rows are never returned. Use `WHERE column IS NULL` or `IS NOT NULL` instead."),
    (["How do I prevent SQL injection?",
      "Is it safe to build SQL queries with string formatting?"],
     "No; use parameterized queries with placeholders like `?` or `$1` and pass the values separately. The driver then sends them as data, so user input can never change the structure of the SQL."),
    (["What is a database index and when should I add one?",
      "Why is my query on a large table slow?"],
     "An index (usually a B-tree) lets the database find rows by a column without scanning the whole table. Add one on columns you often filter, join or sort by, checking with `EXPLAIN` that it's used; each index costs disk space and slows down writes a little."),
    (["What's the difference between COUNT(*) and COUNT(column)?",
      "Why do COUNT(*) and COUNT(email) give different numbers?"],
     "`COUNT(*)` counts all rows, while `COUNT(column)` counts only rows where that column is not NULL. The difference between them is the number of rows with a NULL in that column."),
    (["What's the difference between DELETE, TRUNCATE and DROP?",
      "How do I remove all rows from a table but keep the table?"],
     "`DELETE FROM t` removes rows (optionally filtered with `WHERE`) one by one and can be rolled back inside a transaction. `TRUNCATE TABLE t` empties the whole table much faster but keeps its structure, and `DROP TABLE t` deletes the table itself."),
    (["What is a database transaction?",
      "Why should I use BEGIN and COMMIT?"],
     "A transaction groups statements so that either all of them take effect (`COMMIT`) or none do (`ROLLBACK`). That keeps data consistent if something fails halfway, for example between debiting one account and crediting another."),
    (["What's the difference between UNION and UNION ALL?",
      "Why is my UNION query removing rows?"],
     "`UNION` combines the results of two queries and removes duplicate rows, while `UNION ALL` keeps every row. UNION ALL is also faster because it skips the de-duplication step."),
    # http
    (["What's the difference between GET and POST?",
      "When should an API endpoint use POST instead of GET?"],
     "GET fetches data, carries its parameters in the URL and should have no side effects, so it can be cached and retried safely. POST sends data in the request body and is used to create resources or trigger actions."),
    (["What's the difference between PUT and PATCH?",
      "Should my update endpoint be PUT or PATCH?"],
     "PUT replaces the whole resource with the body you send and is idempotent. PATCH applies a partial update, changing only the fields included in the request."),
    (["What is a CORS error and how do I fix it?",
      "My frontend gets blocked by CORS policy when calling my API. What do I do?"],
     "Browsers block a page from reading responses from another origin unless the server allows it with headers like `Access-Control-Allow-Origin`. The fix belongs on the API server (or a proxy in front of it): allow your frontend's origin there, since frontend code can't override the policy."),
    (["What does idempotent mean for HTTP methods?",
      "Is POST idempotent?"],
     "An idempotent request has the same effect whether it's sent once or several times. GET, PUT and DELETE are idempotent by definition, while POST is not, so retrying a POST can create duplicates."),
    (["How do I send a JSON POST request with curl?",
      "What's the curl command to POST JSON to an API?"],
     "`curl -X POST -H 'Content-Type: application/json' -d '{\"name\":\"test\"}' https://api.example.com/items` sends the JSON as the request body. With curl 7.82 or newer, `curl --json '{\"name\":\"test\"}' URL` sets the headers for you."),
    (["What does HTTPS add on top of HTTP?",
      "Why do I need HTTPS for my site?"],
     "HTTPS is HTTP over TLS: traffic is encrypted and the server proves its identity with a certificate. That stops others on the network from reading or modifying requests, including passwords and cookies."),
    (["How do I see the response headers with curl?",
      "How can I debug an HTTP request with curl?"],
     "`curl -i URL` prints the response headers followed by the body, and `curl -I URL` sends a HEAD request and shows only the headers. Add `-v` to see the full request and response exchange."),
    # docker
    (["What's the difference between a Docker image and a container?",
      "Is a container the same as an image in Docker?"],
     "An image is a read-only template, a filesystem plus metadata, usually built from a Dockerfile. A container is a running or stopped instance of an image with its own writable layer, and you can start many containers from the same image."),
    (["How do I list running Docker containers?",
      "docker ps doesn't show my container that exited. Where is it?"],
     "`docker ps` lists only running containers; `docker ps -a` includes stopped ones too. `docker logs <container>` then shows why one exited."),
    (["How do I open a shell inside a running Docker container?",
      "How can I get a terminal in my container to debug it?"],
     "`docker exec -it <container> sh` opens an interactive shell in a running container; use `bash` instead of `sh` if the image includes it. Changes you make there are lost when the container is removed."),
    (["How do I keep my database data when I remove a Docker container?",
      "My Postgres data disappears when I recreate the container. How do I persist it?"],
     "Use a volume: `docker run -e POSTGRES_PASSWORD=secret -v pgdata:/var/lib/postgresql/data postgres:16` stores the data in the named volume `pgdata`, which survives removing the container. A bind mount such as `-v \"$(pwd)/data:/var/lib/postgresql/data\"` keeps it in a host folder instead."),
    (["How do I free up disk space used by Docker?",
      "What does docker system prune remove?"],
     "`docker system prune` removes stopped containers, unused networks, dangling images and build cache. Add `-a` to also remove every image not used by a container, and `--volumes` for unused anonymous volumes, which deletes their data."),
    (["What's the difference between CMD and ENTRYPOINT in a Dockerfile?",
      "Why are my docker run arguments ignored?"],
     "`ENTRYPOINT` sets the executable the container always runs, and `CMD` gives default arguments to it, or the default command when there's no ENTRYPOINT. Arguments after the image name in `docker run` replace CMD and are appended to ENTRYPOINT."),
    (["What is a .dockerignore file for?",
      "Why does my Docker build send gigabytes of context?"],
     "The build sends the whole context directory to the builder unless paths are excluded in `.dockerignore`. List things like `.git`, `node_modules` and `target` there to speed up builds and keep them out of `COPY . .`."),
    (["How do I see the logs of a Docker container?",
      "How do I follow a container's output?"],
     "`docker logs <container>` prints what the container wrote to stdout and stderr. Add `-f` to follow new output and `--tail 100` to start from the last 100 lines."),
    # regex
    (["What's the difference between .* and .*? in a regex?",
      "Why does my regex match too much text?"],
     "`.*` is greedy and matches as much as possible, while `.*?` is lazy and matches as little as possible. On `<a><b>`, the pattern `<.*>` matches the whole string but `<.*?>` matches only `<a>`."),
    (["What do ^ and $ mean in a regular expression?",
      "My regex matches in the middle of the string, how do I force a full match?"],
     "`^` anchors the match to the start of the string and `$` to the end (or of each line in multiline mode). Wrap the pattern as `^...$` so it must match the whole input."),
    (["How do I match a literal dot in a regex?",
      "Why does the regex a.b match 'axb'?"],
     "An unescaped `.` matches any character except a newline, so `a.b` matches 'axb'. Escape it as `\\.` (or put it in a class, `[.]`) to match a literal dot."),
    (["What are capture groups in regex?",
      "How do I extract parts of a match with a regex?"],
     "Parentheses create capture groups, so `(\\d{4})-(\\d{2})` captures the year and month of `2024-05` separately. Use `(?:...)` when you need grouping without capturing."),
    (["Why should I use raw strings for regex in Python?",
      "What does the r before a regex string mean in Python?"],
     "In `r\"\\d+\\.\\d+\"` the r makes a raw string, so backslashes reach the regex engine unchanged instead of being treated as string escapes. Without it, patterns like `\\b` turn into a backspace character."),
    (["How do I match a whole word with a regex?",
      "My regex for 'cat' also matches 'concatenate'. How do I fix it?"],
     "Use word boundaries: `\\bcat\\b` matches \"cat\" as a word but not inside \"concatenate\". `\\b` matches the position between a word character and a non-word character."),
    # misc
    (["What is UTF-8?",
      "How many bytes does a character take in UTF-8?"],
     "UTF-8 is a variable-length encoding of Unicode that uses 1 to 4 bytes per character, with plain ASCII taking exactly one byte. It's the default encoding of the web and most modern tools."),
    (["How do I create an SSH key for GitHub?",
      "How do I generate an SSH key pair?"],
     "Run `ssh-keygen -t ed25519 -C \"you@example.com\"` and accept the default path. Then add the contents of `~/.ssh/id_ed25519.pub`, the public key, to GitHub's SSH keys settings; never share the private key file."),
    (["How does semantic versioning work?",
      "What do the three numbers in 2.4.1 mean?"],
     "In MAJOR.MINOR.PATCH, MAJOR goes up for breaking changes, MINOR for backward-compatible new features and PATCH for backward-compatible bug fixes. So upgrading from 2.4.1 to 2.5.0 should not break code that uses the public API."),
    (["What's the difference between a process and a thread?",
      "Do threads share memory?"],
     "A process has its own memory space, while threads run inside a process and share its memory. Threads are cheaper to create and can communicate through shared data, but that sharing needs locks or other synchronization."),
    (["What's the difference between binding to 127.0.0.1 and 0.0.0.0?",
      "My server works locally but other machines can't reach it. Why?"],
     "A server bound to `127.0.0.1` only accepts connections from the same machine, while `0.0.0.0` listens on all network interfaces. Bind to `0.0.0.0` (and open the firewall) if other machines or Docker port mappings need to reach it."),
    (["What is the difference between a compiler and an interpreter?",
      "Is Python compiled or interpreted?"],
     "A compiler translates a whole program to another form, such as machine code, before it runs, while an interpreter executes code step by step at runtime. CPython does both in a sense: it compiles source to bytecode and then interprets that bytecode."),
]

HTTP_CODES = [
    (200, "OK", "the request succeeded and the response body contains the result"),
    (201, "Created", "the request succeeded and a new resource was created, often with its URL in the `Location` header"),
    (204, "No Content", "the request succeeded but there is no response body, which is common for DELETE"),
    (301, "Moved Permanently", "the resource has a new permanent URL, given in the `Location` header, and clients should use it from now on"),
    (302, "Found", "the resource is temporarily at another URL given in the `Location` header"),
    (304, "Not Modified", "the cached copy the client already has is still valid, so no body is sent"),
    (400, "Bad Request", "the server couldn't process the request because it was malformed, for example invalid JSON or a missing parameter"),
    (401, "Unauthorized", "the request lacks valid authentication, such as a missing or expired token, so the client should log in or send credentials"),
    (403, "Forbidden", "the server knows who you are but you don't have permission for this resource"),
    (404, "Not Found", "the server can't find anything at the requested URL"),
    (405, "Method Not Allowed", "the URL exists but doesn't support the HTTP method you used, such as a POST to a read-only endpoint"),
    (409, "Conflict", "the request conflicts with the current state of the resource, for example creating a user whose email already exists"),
    (413, "Content Too Large", "the request body is bigger than the server is willing to accept, as with an oversized upload"),
    (415, "Unsupported Media Type", "the server doesn't accept the body's format, which often means a missing or wrong `Content-Type` header"),
    (422, "Unprocessable Content", "the request was well-formed but failed validation, for example a field with an invalid value"),
    (429, "Too Many Requests", "you've hit a rate limit; wait before retrying, and check the `Retry-After` header if the server sends one"),
    (500, "Internal Server Error", "something went wrong on the server while handling the request; the server's logs should show the cause"),
    (502, "Bad Gateway", "a proxy or gateway got an invalid response from the upstream server it forwards to"),
    (503, "Service Unavailable", "the server is temporarily unable to handle requests, for example because it's overloaded or down for maintenance"),
    (504, "Gateway Timeout", "a proxy or gateway didn't get a response from the upstream server in time"),
]

PORTS = [
    ("PostgreSQL", 5432), ("MySQL", 3306), ("Redis", 6379), ("MongoDB", 27017), ("SSH", 22),
    ("HTTP", 80), ("HTTPS", 443), ("DNS", 53), ("Elasticsearch's HTTP API", 9200), ("RabbitMQ (AMQP)", 5672),
    ("Memcached", 11211), ("Microsoft SQL Server", 1433),
]

BRANCHES = ["feature/login-form", "fix/readme-typo", "release-2.1", "experiment/cache", "docs/api-examples",
            "hotfix/null-check", "refactor/db-layer", "feature/dark-mode", "bugfix/timezone", "spike/grpc"]
EXTS = ["py", "log", "md", "json", "rs", "tmp", "csv", "yaml", "sh", "txt"]
FILES = ["access.log", "data.csv", "main.py", "README.md", "users.txt", "src/lib.rs", "notes.txt", "errors.log"]
SQL_TABLES = [("orders", "created_at", "customer_id"), ("users", "signup_date", "country"),
              ("posts", "published_at", "author_id"), ("payments", "paid_at", "method"),
              ("events", "occurred_at", "event_type"), ("tickets", "opened_at", "status")]
# (image, container port, host ports, extra options, extra sentence)
DOCKER_IMAGES = [
    ("nginx", 80, (8080, 8000), "", ""),
    ("httpd", 80, (8080, 8081), "", ""),
    ("grafana/grafana", 3000, (3000, 3001), "", ""),
    ("redis", 6379, (6379, 6380), "", ""),
    ("postgres:16", 5432, (5432, 5433), "-e POSTGRES_PASSWORD=secret ",
     " The postgres image refuses to start without `POSTGRES_PASSWORD`, so pick a real password."),
]
SORT_KEYS = ["age", "price", "name", "created_at", "score", "rating"]
CRATES = [("serde", " For `#[derive(Serialize, Deserialize)]` use `cargo add serde --features derive`."),
          ("anyhow", ""), ("rand", ""), ("regex", ""), ("clap", " For the derive API use `cargo add clap --features derive`."),
          ("tokio", " Most async programs want `cargo add tokio --features full`."), ("chrono", ""), ("thiserror", "")]
SCRIPTS = ["deploy.sh", "backup.sh", "build.sh", "run_tests.sh", "cleanup.py", "fetch_data.py"]
PIP = [("requests", "2.31.0"), ("numpy", "1.26.4"), ("flask", "3.0.0"), ("pandas", "2.2.1"), ("django", "4.2.11")]
ARCHIVES = ["backup", "logs-2024-05", "project", "site", "dataset"]
RUST_TYPES = ["i32", "u64", "f64", "usize"]
REGEXES = [
    (["Write a regex that matches a 5-digit US ZIP code, optionally with the +4 extension.",
      "What regex validates a US ZIP code like 12345 or 12345-6789?"],
     "`^\\d{5}(-\\d{4})?$` matches five digits, optionally followed by a hyphen and four more digits. The `^` and `$` anchors make sure nothing else is in the string."),
    (["What regex matches a hex color like #fff or #1a2b3c?",
      "Write a regex for CSS hex colors."],
     "`^#(?:[0-9a-fA-F]{3}){1,2}$` matches a `#` followed by either 3 or 6 hex digits. To also allow the 4- and 8-digit forms with alpha, use `^#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$`."),
    (["What regex matches a date in YYYY-MM-DD format?",
      "Write a regex for ISO dates like 2024-05-17."],
     "`^\\d{4}-\\d{2}-\\d{2}$` checks the YYYY-MM-DD shape. It accepts impossible dates like 2024-13-45, so parse the value with a date library if you need a real validity check."),
    (["What's a simple regex to sanity-check an email address?",
      "Is there a regex for email validation?"],
     "`^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$` is a reasonable sanity check: something, an @, and a domain containing a dot, with no spaces. Full email validation by regex is impractical, so the real test is sending a confirmation email."),
    (["What regex matches a time in 24-hour HH:MM format?",
      "Write a regex for times like 09:30 or 23:59."],
     "`^([01]\\d|2[0-3]):[0-5]\\d$` accepts 00:00 to 23:59 with two-digit hours. The first group allows 00-19 or 20-23 for the hour, and `[0-5]\\d` covers minutes 00-59."),
    (["How do I match trailing whitespace at the end of lines with a regex?",
      "What regex finds spaces or tabs at the end of a line?"],
     "`[ \\t]+$` matches spaces and tabs right before the end of a line when multiline mode is on (the `m` flag, or `re.MULTILINE` in Python). Replace matches with an empty string to strip them."),
]


def tech_pairs() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for qs, a in QA + REGEXES:
        for q in qs:
            pairs.append((q, a))
    for code, name, meaning in HTTP_CODES:
        a = f"{code} {name} means {meaning}."
        pairs.append((f"What does HTTP status {code} mean?", a))
        pairs.append((f"My API call returns {code} {name}. What does that mean?", a))
    for service, port in PORTS:
        a = f"The default port for {service} is {port}. Servers can be configured to use another port, so check the configuration if a connection fails."
        pairs.append((f"What is the default port for {service}?", a))
    for b in BRANCHES:
        a = f"Run `git switch -c {b}` to create the branch from your current commit and switch to it. On Git versions older than 2.23, use `git checkout -b {b}`."
        pairs.append((f"How do I create a new git branch called {b} and switch to it?", a))
        a2 = f"`git branch -d {b}` deletes it if it's fully merged, and `git branch -D {b}` forces the deletion. To delete it on the remote as well, run `git push origin --delete {b}`."
        pairs.append((f"How do I delete the branch {b}?", a2))
    for ext in EXTS:
        a = f"`find . -type f -name '*.{ext}'` lists every .{ext} file under the current directory, including subfolders. Keep the quotes so the shell passes the pattern to find instead of expanding it."
        pairs.append((f"How do I find all .{ext} files in a directory tree?", a))
    for f in FILES:
        a = f"`wc -l {f}` prints the line count followed by the file name. Use `wc -l < {f}` if you only want the number."
        pairs.append((f"How do I count the lines in {f}?", a))
        a2 = f"`head -n 20 {f}` prints the first 20 lines and `tail -n 20 {f}` prints the last 20. Leave out `-n` to get the default of 10 lines."
        pairs.append((f"How do I show just the first or last 20 lines of {f}?", a2))
    for table, time_col, group_col in SQL_TABLES:
        for n in (5, 10):
            a = f"`SELECT * FROM {table} ORDER BY {time_col} DESC LIMIT {n};` works in PostgreSQL, MySQL and SQLite. In SQL Server, write `SELECT TOP {n} * FROM {table} ORDER BY {time_col} DESC;` instead."
            pairs.append((f"Write a SQL query that returns the {n} most recent rows from {table} by {time_col}.", a))
        a = f"`SELECT {group_col}, COUNT(*) AS total FROM {table} GROUP BY {group_col} ORDER BY total DESC;` returns one row per {group_col} with its count, largest first."
        pairs.append((f"How do I count rows in {table} for each {group_col}?", a))
    for image, port, hosts, opts, extra in DOCKER_IMAGES:
        for host in hosts:
            a = f"`docker run -d {opts}-p {host}:{port} {image}` starts it in the background and maps port {host} on your machine to port {port} in the container.{extra}"
            pairs.append((f"How do I run {image} in Docker and reach it on localhost:{host}?", a))
    for k in SORT_KEYS:
        a = f"`sorted(items, key=lambda d: d[\"{k}\"])` returns a new list sorted by {k}. Add `reverse=True` for descending order, or call `items.sort(key=...)` to sort the list in place."
        pairs.append((f"How do I sort a list of dicts by the \"{k}\" key in Python?", a))
    for crate, extra in CRATES:
        a = f"Run `cargo add {crate}` in the project folder (Cargo 1.62+), which adds the latest version under `[dependencies]` in Cargo.toml.{extra}"
        pairs.append((f"How do I add the {crate} crate to my Rust project?", a))
    for s in SCRIPTS:
        shebang = "#!/usr/bin/env bash" if s.endswith(".sh") else "#!/usr/bin/env python3"
        a = f"Run `chmod +x {s}`, then start it with `./{s}`. Make sure its first line is a shebang such as `{shebang}` so the system knows which interpreter to use."
        pairs.append((f"How do I make {s} executable?", a))
    for pkg, ver in PIP:
        a = f"`pip install {pkg}=={ver}` installs exactly that version. For a minimum version, use `pip install \"{pkg}>={ver}\"`, with quotes so the shell doesn't treat `>` as a redirect."
        pairs.append((f"How do I install version {ver} of {pkg} with pip?", a))
    for name in ARCHIVES:
        a = f"`tar -xzf {name}.tar.gz` extracts it into the current directory; add `-C some/dir` to extract elsewhere. To create one, use `tar -czf {name}.tar.gz folder/`."
        pairs.append((f"How do I extract {name}.tar.gz?", a))
    for t in RUST_TYPES:
        a = f"Call `s.trim().parse::<{t}>()`, which returns a `Result` that is `Err` if the text isn't a valid {t}. Trimming matters for input from `read_line`, which keeps the trailing newline."
        pairs.append((f"How do I convert a String to {t} in Rust?", a))
    for port in (3000, 5000, 8000):
        a = f"Find the PID with `lsof -i :{port}`, then stop it with `kill <PID>`; use `kill -9` only if it ignores the normal signal. On Linux, `fuser -k {port}/tcp` does both in one step."
        pairs.append((f"How do I kill the process that's using port {port}?", a))
    return pairs


def write_tech(rng: random.Random) -> int:
    pairs = tech_pairs()
    questions = [q for q, _ in pairs]
    assert len(questions) == len(set(questions)), "duplicate question"
    rng.shuffle(pairs)
    pairs = pairs[:300]
    lines = []
    for q, a in pairs:
        obj = {"messages": [
            {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
            {"role": "user", "content": q},
            {"role": "assistant", "content": a},
        ]}
        lines.append(json.dumps(obj, ensure_ascii=False))
    write("tech-qa.jsonl", "\n".join(lines) + "\n")
    return len(lines)


# ---------------------------------------------------------------------------------------------
# 3. Review sentiment (Alpaca JSON)
# ---------------------------------------------------------------------------------------------

# (product name, short name, positive sentences, negative sentences)
PRODUCTS = [
    ("Kettleby electric kettle", "kettle",
     ["It boils a full liter in about four minutes.", "The handle stays cool even right after boiling.",
      "It switches off on its own the moment the water boils.", "The water window is easy to read from across the kitchen.",
      "It's much quieter than our old kettle."],
     ["The lid spring broke after three weeks.", "The water tastes like plastic even after several rinses.",
      "It leaks from the base if you fill it past the halfway mark.", "It takes almost ten minutes to boil a liter.",
      "The auto shut-off failed and it kept boiling until I unplugged it."]),
    ("Brightway cordless vacuum", "vacuum",
     ["The battery easily lasts through the whole apartment.", "It picks up dog hair from the rug in one pass.",
      "It's light enough that I can vacuum the stairs without getting tired.", "Emptying the bin is quick and doesn't get dust everywhere.",
      "The LED on the head shows dust under the couch I never knew was there."],
     ["The battery dies after ten minutes on the normal setting.", "Hair wraps around the brush roll constantly.",
      "It's so loud my cat hides every time I turn it on.", "The dust bin clip snapped off within a month.",
      "It barely picks up crumbs from the carpet."]),
    ("LumaNest bedside lamp", "lamp",
     ["The warm light setting is perfect for reading in bed.", "The touch dimmer is smooth and has lots of levels.",
      "The USB port on the base is handy for charging my phone overnight.", "It looks much more expensive than it was.",
      "The sunrise alarm wakes me up gently."],
     ["It flickers at the lowest brightness.", "The touch control turns it on whenever I brush past it.",
      "The light is a harsh blue-white even on the warm setting.", "The base wobbles and it tipped over twice.",
      "It started buzzing after a couple of weeks."]),
    ("AquaClear water filter pitcher", "pitcher",
     ["Our tap water finally tastes clean.", "It fits neatly in the fridge door.",
      "Filtering a full pitcher only takes a couple of minutes.", "The filter indicator makes it easy to know when to swap cartridges.",
      "Replacement filters are cheap and easy to find."],
     ["The lid falls off whenever I pour.", "Filtering takes forever, over fifteen minutes for one pitcher.",
      "Black specks from the filter ended up in my glass.", "The filter indicator stopped working after a week.",
      "It's too tall to fit on any shelf in my fridge."]),
    ("Breezo tower fan", "fan",
     ["It's quiet enough on low to sleep next to.", "The oscillation covers the whole living room.",
      "The remote works from across the room.", "It cooled our bedroom noticeably during the heat wave.",
      "It was easy to assemble in about five minutes."],
     ["It rattles loudly on every speed.", "The remote stopped working after a few days.",
      "Even on high it barely moves any air.", "The display light is so bright it keeps me awake, and it can't be turned off.",
      "It started smelling like burning plastic after a week."]),
    ("CrispPot air fryer", "air fryer",
     ["Fries come out crispy without any oil.", "The basket is dishwasher safe and cleans up easily.",
      "It heats up in a couple of minutes.", "Chicken thighs come out juicy inside and crisp outside.",
      "The presets are actually useful."],
     ["The nonstick coating started peeling after a month.", "The basket is too small to cook for more than one person.",
      "It gives off a chemical smell every time it runs.", "Food cooks unevenly, burnt on one side and raw on the other.",
      "The timer dial stopped clicking into place."]),
    ("SnugWeave throw blanket", "blanket",
     ["It's incredibly soft and warm.", "It still looks new after several washes.",
      "It's big enough to cover two people on the couch.", "The color is exactly like the photos.",
      "It doesn't shed at all."],
     ["It shed fuzz all over my clothes and the couch.", "It shrank a lot in the first wash.",
      "It's much thinner than it looks in the pictures.", "The color was way duller than advertised.",
      "The stitching came loose along one edge."]),
    ("Tidyline laundry hamper", "hamper",
     ["It holds a full week of laundry for two people.", "The removable bag makes carrying clothes to the machine easy.",
      "It folds flat when I'm not using it.", "The lid keeps the smell in.",
      "The bamboo frame feels sturdy."],
     ["The frame bends as soon as it's half full.", "The handles ripped off the bag the first time I carried it.",
      "It's much smaller than the listed dimensions.", "The lid doesn't stay closed.",
      "It arrived with a cracked frame."]),
    ("Oakhaven bamboo cutting board", "cutting board",
     ["It's thick and doesn't slide around on the counter.", "The juice groove catches everything when I carve meat.",
      "It doesn't dull my knives.", "It still looks great after months of daily use.",
      "It's big enough for chopping a whole batch of vegetables."],
     ["It cracked down the middle after two weeks.", "It warped after a single wash.",
      "My knife leaves deep grooves in it right away.", "It has a strong glue smell.",
      "It splinters along the edges."]),
    ("PureMist humidifier", "humidifier",
     ["It runs all night on one tank.", "It's nearly silent, just a soft bubbling sound.",
      "My morning sore throat is gone since I started using it.", "The tank is easy to fill from the top.",
      "It shuts off automatically when the water runs out."],
     ["It leaves white dust on all the furniture.", "The tank leaks onto the floor.",
      "It's so loud it woke up the baby.", "Mold started growing in the tank after a week even though I cleaned it.",
      "The mist output is barely noticeable."]),
    ("StackWell container set", "container set",
     ["The lids snap on tight and never leak.", "They stack neatly and save a lot of cupboard space.",
      "They're safe in the microwave and the dishwasher.", "The glass doesn't stain, even with tomato sauce.",
      "Each lid fits more than one container size, so matching them is easy."],
     ["Two of the lids cracked the first time I put them in the dishwasher.", "Soup leaked all over my bag.",
      "The plastic stained orange after one batch of curry.", "The lids warp and no longer close after washing.",
      "Half of the set arrived with chipped edges."]),
    ("DryDay dish rack", "dish rack",
     ["It holds a full load of dishes from a dinner for four.", "The drip tray drains straight into the sink.",
      "The stainless steel hasn't rusted at all.", "It fits perfectly in our narrow kitchen.",
      "The utensil holder comes apart for cleaning."],
     ["It started rusting within a month.", "The drip tray doesn't drain, so water pools underneath.",
      "Plates don't fit in the slots.", "It wobbles every time I put a pot on it.",
      "The plastic parts yellowed quickly."]),
    ("SoftStep memory foam bath mat", "bath mat",
     ["It's plush and feels great under bare feet.", "It soaks up water quickly and dries fast.",
      "The backing keeps it from slipping on the tiles.", "It came out of the washer looking new.",
      "The gray matches our bathroom perfectly."],
     ["It stays soggy for hours after a shower.", "The backing crumbled after the first wash.",
      "It slides across the floor, which feels dangerous.", "It flattened within a couple of weeks.",
      "It smells musty no matter how often I wash it."]),
    ("Calma shower head", "shower head",
     ["The water pressure is noticeably stronger than before.", "It installed in five minutes with no tools.",
      "The massage setting is great after a run.", "It hasn't clogged even with our hard water.",
      "Switching between spray modes is easy with wet hands."],
     ["It drips constantly even when the water is off.", "The pressure is weaker than the old one.",
      "The nozzles clogged with limescale within a month.", "It leaks at the connection no matter how much tape I use.",
      "The finish started flaking off after a few weeks."]),
    ("IronEase steam iron", "iron",
     ["It heats up in under a minute.", "The steam gets wrinkles out of linen shirts easily.",
      "The soleplate glides smoothly.", "The auto shut-off gives me peace of mind.",
      "It doesn't leak, even when held vertically for steaming curtains."],
     ["It spits water and leaves spots on my clothes.", "The soleplate scratched after a couple of uses.",
      "It takes forever to get hot.", "The cord is too short to reach the ironing board from the outlet.",
      "It left a brown stain on my white shirt."]),
    ("Brewly drip coffee maker", "coffee maker",
     ["It makes a full pot in about six minutes.", "The coffee tastes great and stays hot.",
      "The programmable timer means coffee is ready when I wake up.", "It's easy to clean.",
      "The carafe pours without dripping."],
     ["The carafe dribbles coffee all over the counter.", "The coffee comes out lukewarm.",
      "It stopped working after two months.", "The water reservoir leaks.",
      "The brew has a bitter, burnt taste no matter what beans I use."]),
]

GENERIC_POS = ["Shipping was fast and it was packaged well.", "For the price it's a great deal.",
               "Setup was simple and the instructions were clear.", "Customer service answered my question within a day."]
GENERIC_NEG = ["Customer service never replied to my emails.", "It arrived with a dented box and a missing part.",
               "It's overpriced for the quality.", "The instructions were useless."]
CONTEXT = ["I bought this for my first apartment.", "We've had it for a few months now.", "Got it on sale.",
           "Bought this as a gift for my parents.", "I replaced an old one that had lasted ten years.",
           "I use it every day.", "I was looking for something affordable.", "I picked this one because of the reviews.",
           "", "", "", ""]
POS_CLOSE = ["Highly recommend.", "Would buy again.", "Five stars.", "Very happy with it.", "Love it!",
             "Exactly what I needed.", "I've already ordered a second one.", ""]
NEG_CLOSE = ["Returning it.", "Would not recommend.", "One star.", "Save your money.", "Really disappointed.",
             "Avoid this one.", "I want a refund.", ""]
MIX_CLOSE = ["Three stars.", "It's okay for the price.", "Mixed feelings overall.", "Not sure I'd buy it again.",
             "Good, but not great.", "Decent, with some flaws.", ""]
MIX_JOIN = ["But", "However,", "On the other hand,", "That said,"]
MIX_JOIN_BAD = ["Unfortunately,", "The downside is that", "My only complaint is that"]
MIX_JOIN_GOOD = ["On the plus side,", "To be fair,", "The good news is that"]


def lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def review(rng: random.Random, label: str) -> str:
    name, short, pos, neg = rng.choice(PRODUCTS)
    parts = []
    ctx = rng.choice(CONTEXT)
    if ctx:
        parts.append(ctx)
    if rng.random() < 0.4:
        intro = {"positive": [f"This {short} is great.", f"I really like this {name}.", f"So glad I bought the {name}."],
                 "negative": [f"This {short} is a letdown.", f"I regret buying the {name}.", f"The {name} was a waste of money."],
                 "mixed": [f"The {name} is a bit of a mixed bag.", f"Some things about this {short} are great, others not so much."]}[label]
        parts.append(rng.choice(intro))
    if label == "positive":
        parts += rng.sample(pos, rng.randint(1, 3))
        if rng.random() < 0.3:
            parts.append(rng.choice(GENERIC_POS))
        close = rng.choice(POS_CLOSE)
    elif label == "negative":
        parts += rng.sample(neg, rng.randint(1, 3))
        if rng.random() < 0.3:
            parts.append(rng.choice(GENERIC_NEG))
        close = rng.choice(NEG_CLOSE)
    else:
        good = rng.sample(pos, rng.randint(1, 2))
        bad = rng.sample(neg, rng.randint(1, 2))
        if rng.random() < 0.5:
            first, second = good, bad
        else:
            first, second = bad, good
        parts += first
        joins = MIX_JOIN + (MIX_JOIN_BAD if second is bad else MIX_JOIN_GOOD)
        parts.append(f"{rng.choice(joins)} {lower_first(second[0])}")
        parts += second[1:]
        close = rng.choice(MIX_CLOSE)
    if close:
        parts.append(close)
    return " ".join(parts)


def write_reviews(rng: random.Random) -> int:
    instruction = "Classify the sentiment of this product review as positive, negative or mixed."
    rows = []
    seen: set[str] = set()
    for label in ["positive", "negative", "mixed"]:
        n = 0
        while n < 100:
            text = review(rng, label)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"instruction": instruction, "input": text, "output": label})
            n += 1
    rng.shuffle(rows)
    write("review-sentiment.json", json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    return len(rows)


# ---------------------------------------------------------------------------------------------
# index.toml and LICENSE
# ---------------------------------------------------------------------------------------------

LICENSE = """\
The sample datasets in this folder (customer-support.csv, tech-qa.jsonl, review-sentiment.json)
were written for the VibeFlow project and generated by scripts/datasets/make_samples.py. The
products, companies and people in them are fictional. To the extent possible under law, the
VibeFlow authors have waived all copyright and related or neighboring rights to these files,
dedicating them to the public domain: you may copy, modify, distribute and use them, including
for commercial purposes, without asking permission or giving attribution.

CC0 1.0 Universal (CC0 1.0) Public Domain Dedication
https://creativecommons.org/publicdomain/zero/1.0/
"""


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_index(counts: dict[str, int]) -> None:
    entries = [
        ("customer-support", "Customer support replies",
         "Customer messages and support replies for Nimbus Notes, a fictional note-taking app, covering sync, billing, login, export, sharing and offline use.",
         "customer-support.csv", "csv", "chat"),
        ("tech-qa", "Technical Q&A",
         "Short, accurate answers to everyday developer questions about git, the shell, Python, Rust, SQL, HTTP, Docker and regular expressions, in OpenAI chat format.",
         "tech-qa.jsonl", "jsonl", "qa"),
        ("review-sentiment", "Review sentiment",
         "Reviews of fictional household products labelled positive, negative or mixed, in Alpaca instruction format.",
         "review-sentiment.json", "json", "classification"),
    ]
    out = ["# Sample datasets for offline dataset discovery; written by scripts/datasets/make_samples.py.", ""]
    for id_, title, desc, file, fmt, task in entries:
        out += [
            "[[dataset]]",
            f"id = {toml_str(id_)}",
            f"title = {toml_str(title)}",
            f"description = {toml_str(desc)}",
            f"file = {toml_str(file)}",
            f"format = {toml_str(fmt)}",
            f"rows = {counts[file]}",
            f"task = {toml_str(task)}",
            'license = "CC0-1.0"',
            "",
        ]
    write("index.toml", "\n".join(out))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    counts = {
        "customer-support.csv": write_support(random.Random(SEED)),
        "tech-qa.jsonl": write_tech(random.Random(SEED + 1)),
        "review-sentiment.json": write_reviews(random.Random(SEED + 2)),
    }
    write_index(counts)
    write("LICENSE", LICENSE)
    for file, n in counts.items():
        print(f"{file}: {n} rows")


if __name__ == "__main__":
    main()
