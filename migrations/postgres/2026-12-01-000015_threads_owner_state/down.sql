DROP INDEX threads_owner_state;
