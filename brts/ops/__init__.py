"""Operations: what this machine can do (`doctor`) and a store's damaged artefacts (`store_check`)."""
