"""Readable, salted pseudonyms for students who did not opt in to showing their name.

A pseudonym such as "Curious Boson 1742" is an adjective, a physics noun and a number, all taken from an HMAC of
the student id keyed with a course secret (the salt). Without the salt nobody can recompute it from a list of
student ids, yet it is stable for the whole challenge, so students recognise themselves from week to week.
The space is 128 x 128 x 9,999 (about 1.6e8) names: in a cohort of 300 a clash has odds of about 1 in 3,600,
and `shown_names` resolves the rare clash deterministically.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

ADJECTIVES: tuple[str, ...] = (
    "Adiabatic", "Agile", "Amber", "Ample", "Ancient", "Angular", "Astute", "Atomic",
    "Azure", "Balanced", "Bold", "Bouncy", "Brave", "Breezy", "Bright", "Brisk",
    "Calm", "Careful", "Celestial", "Charmed", "Cheerful", "Chiral", "Clever", "Coherent",
    "Cosmic", "Covariant", "Crisp", "Curious", "Daring", "Dapper", "Deft", "Diligent",
    "Dynamic", "Eager", "Elastic", "Electric", "Elegant", "Eloquent", "Ergodic", "Exact",
    "Fearless", "Fervent", "Fluent", "Focused", "Frank", "Frisky", "Gallant", "Gentle",
    "Gifted", "Glowing", "Golden", "Graceful", "Grand", "Handy", "Hardy", "Harmonic",
    "Hearty", "Helpful", "Honest", "Humble", "Ideal", "Inertial", "Jolly", "Jovial",
    "Keen", "Kind", "Kinetic", "Lively", "Logical", "Lucid", "Luminous", "Lunar",
    "Magnetic", "Majestic", "Mellow", "Merry", "Mighty", "Modest", "Nimble", "Noble",
    "Optical", "Orbital", "Patient", "Peaceful", "Plucky", "Polar", "Polished", "Precise",
    "Prime", "Proud", "Quantum", "Quick", "Quiet", "Radiant", "Rapid", "Rational",
    "Relativistic", "Resonant", "Robust", "Rosy", "Serene", "Sharp", "Shiny", "Silent",
    "Silver", "Sincere", "Smooth", "Solar", "Sonic", "Spirited", "Stable", "Steady",
    "Stellar", "Sturdy", "Subtle", "Sunny", "Swift", "Symmetric", "Thermal", "Thoughtful",
    "Tidy", "Tranquil", "Unitary", "Valiant", "Vivid", "Wise", "Witty", "Zesty",
)  # fmt: skip

NOUNS: tuple[str, ...] = (
    "Anyon", "Atom", "Axion", "Baryon", "Boson", "Brane", "Cepheid", "Comet",
    "Condensate", "Crystal", "Cyclotron", "Diode", "Dipole", "Doublet", "Dyon", "Electron",
    "Entropy", "Exciton", "Fermion", "Field", "Fluxon", "Galaxy", "Gluon", "Graviton",
    "Gyroscope", "Hadron", "Halo", "Helicity", "Hologram", "Hyperon", "Instanton", "Interferometer",
    "Isotope", "Kaon", "Laser", "Lattice", "Lepton", "Magnetar", "Magnon", "Maser",
    "Meson", "Meteor", "Molecule", "Monopole", "Muon", "Nebula", "Neutrino", "Neutron",
    "Nucleon", "Nucleus", "Operator", "Orbit", "Oscillator", "Parsec", "Pendulum", "Phonon",
    "Photon", "Pion", "Plasma", "Plasmon", "Polariton", "Polaron", "Positron", "Prism",
    "Proton", "Pulsar", "Quark", "Quasar", "Qubit", "Qutrit", "Radian", "Resonator",
    "Roton", "Scalar", "Singlet", "Skyrmion", "Soliton", "Spinor", "Spin", "Supernova",
    "Tachyon", "Tensor", "Triplet", "Vector", "Vortex", "Wavelet", "Wavefront", "Zeppelin",
    "Ampere", "Angstrom", "Aurora", "Beam", "Blazar", "Capacitor", "Cavity", "Chromaton",
    "Collider", "Corona", "Cosmos", "Current", "Decay", "Detector", "Dynamo", "Eclipse",
    "Emitter", "Equinox", "Flux", "Gradient", "Horizon", "Impulse", "Inductor", "Joule",
    "Kelvin", "Lens", "Magnet", "Momentum", "Nova", "Parity", "Planet", "Pulse",
    "Magnetron", "Ray", "Rotor", "Spectrum", "Tesla", "Torque", "Wave", "Zenith",
)  # fmt: skip

NUMBERS = 9999  # pseudonym numbers run from 1 to 9999


def _digest(student: str, salt: str, attempt: int = 0) -> bytes:
    if not salt:
        # With an empty key anyone holding the class list could recompute every pseudonym.
        raise ValueError("a non-empty secret salt is required to make pseudonyms")
    message = student.encode() if attempt == 0 else f"{student}\0{attempt}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).digest()


def course_salt(secret: str) -> str:
    """The salt of a course's pseudonyms, derived from its challenge secret."""
    return "pseudonyms:" + (secret or "unset")


def pseudonym(student: str, salt: str, *, attempt: int = 0) -> str:
    """The pseudonym of ``student`` under the course secret ``salt``: deterministic, readable, not reversible.

    ``attempt`` > 0 draws an alternative name from the same student and salt; `shown_names` uses it to resolve
    the rare clash between two students.
    """
    digest = _digest(student, salt, attempt)
    adjective = ADJECTIVES[digest[0] % len(ADJECTIVES)]
    noun = NOUNS[digest[1] % len(NOUNS)]
    number = int.from_bytes(digest[2:10], "big") % NUMBERS + 1
    return f"{adjective} {noun} {number}"


def shown_names(opted_in: Mapping[str, str | None], salt: str) -> dict[str, str]:
    """The name each student is shown under: the opted-in real name, else a pseudonym unique among them all.

    ``opted_in`` maps each student id to the real name they chose to show (or None). A pseudonym that clashes
    with another pseudonym or with a shown real name is redrawn (``attempt`` 1, 2, ...); among students whose
    pseudonyms clash, the one with the smaller keyed digest keeps it, so the outcome depends neither on input
    order nor on the (secret) ids themselves.
    """
    names = {student: name.strip() for student, name in opted_in.items() if name and name.strip()}
    taken = set(names.values())
    hidden = sorted((s for s in opted_in if s not in names), key=lambda s: _digest(s, salt))
    for student in hidden:
        attempt = 0
        candidate = pseudonym(student, salt)
        while candidate in taken:
            attempt += 1
            candidate = pseudonym(student, salt, attempt=attempt)
        names[student] = candidate
        taken.add(candidate)
    return names


def secret_order(student: str, salt: str) -> bytes:
    """A salted sort key for a student: a deterministic last tie-break that reveals nothing about the id."""
    return _digest(student, salt, attempt=-1)
