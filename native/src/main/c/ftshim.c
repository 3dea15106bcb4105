/* placeholder: the shim lands with the libftshim issue */
int ftshim_placeholder(void);
int ftshim_placeholder(void) { return 0; }
