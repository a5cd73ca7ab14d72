"""The Chromium the browser tests and the UI benchmark drive: Debian's own binary (apt-get install chromium), launched
by the playwright package through `executable_path`, so no browser is downloaded; and the app's page as a person uses
it."""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def coin_choice(page, label: str):
    """What a person clicks to choose the coin `label` (e.g. "Ethereum (ETH)"): its button when the app shows the coins
    as buttons (a few coins), else its option once the dropdown is open (many coins)."""
    box = page.locator("#cp-coin")
    if box.locator("input[type=radio]").count():
        return box.get_by_label(label, exact=True)
    box.locator("input").click()
    option = page.get_by_role("option", name=label, exact=True)
    option.wait_for(timeout=30_000)
    return option
