// kxy admin page
