/*!
Rapport's records. (Being written.)
*/
