"""ESC-50's five super-categories, for reports that read at 50 classes: confusion matrices
and per-class charts sorted so that related sounds sit together."""

from __future__ import annotations

# Piczak (2015): ten classes each, in the dataset's target order.
SUPER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": ("dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow"),
    "natural": ("rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
                "pouring_water", "toilet_flush", "thunderstorm"),
    "human": ("crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
              "brushing_teeth", "snoring", "drinking_sipping"),
    "domestic": ("door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
                 "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking"),
    "urban": ("helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
              "fireworks", "hand_saw"),
}  # fmt: skip
GROUP_OF = {name: group for group, names in SUPER_CATEGORIES.items() for name in names}


def grouped_order(classes: list[str]) -> tuple[list[int], list[tuple[str, int, int]]]:
    """Indices that sort ``classes`` by super-category (ESC-50 or its subsets), and the
    (group, first, end) spans in that order. Other class lists keep their order, one span."""
    if not classes or not all(c in GROUP_OF for c in classes):
        return list(range(len(classes))), []
    rank = {name: i for i, name in enumerate(n for names in SUPER_CATEGORIES.values() for n in names)}
    order = sorted(range(len(classes)), key=lambda i: rank[classes[i]])
    spans: list[tuple[str, int, int]] = []
    for position, index in enumerate(order):
        group = GROUP_OF[classes[index]]
        if spans and spans[-1][0] == group:
            spans[-1] = (group, spans[-1][1], position + 1)
        else:
            spans.append((group, position, position + 1))
    return order, spans
